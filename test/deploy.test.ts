/**
 * Checks of everything in deploy/: the Prometheus rules (promtool check + unit tests), the Grafana
 * dashboard (every expression parses as PromQL, every panel on the datasource variable) and the
 * Kubernetes manifests, and that every expression anywhere in deploy/ names only the metric
 * families and labels of the contract in docs/metrics.md.
 *
 * promtool comes from the Debian package `prometheus` (.ci/run installs it), or set PROMTOOL to
 * its path. Without it the promtool cases are skipped locally, and fail under CI=true.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { parseConfig } from '../packages/server/src/config/load.js';

const root = join(import.meta.dirname, '..');
const deployDir = join(root, 'deploy');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

// ---------------------------------------------------------------------------------------------
// promtool

const inCI = process.env.CI === 'true';
/** The promtool binary: PROMTOOL if set, else promtool on PATH. */
const promtoolBin = process.env.PROMTOOL || 'promtool';
const havePromtool = spawnSync(promtoolBin, ['--version'], { encoding: 'utf8' }).status === 0;
if (!havePromtool && !inCI) {
  console.warn(
    `deploy.test.ts: skipping the promtool checks: ${promtoolBin} is not installed (Debian: apt-get install prometheus)`,
  );
}
/** promtool cases run when promtool is there, and fail in CI when it is not. */
const withPromtool = havePromtool || inCI ? it : it.skip;

function promtool(args: string[], cwd: string = root): string {
  if (!havePromtool) {
    throw new Error(
      `${promtoolBin} is not installed but CI=true: the rule checks cannot run. Install the Debian ` +
        'package prometheus (.ci/run does it before npm install).',
    );
  }
  const run = spawnSync(promtoolBin, args, { cwd, encoding: 'utf8' });
  const output = `promtool ${args.join(' ')} (exit ${run.status})\n${run.stdout}${run.stderr}`;
  expect(run.status, output).toBe(0);
  return output;
}

const tmp = mkdtempSync(join(tmpdir(), 'openclaw-deploy-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// The contract: docs/metrics.md's table of families

interface Family {
  type: string;
  labels: string[];
}

function contractFamilies(): Map<string, Family> {
  const families = new Map<string, Family>();
  for (const line of read('docs/metrics.md').split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    const name = /^`([a-zA-Z_:][a-zA-Z0-9_:]*)`$/.exec(cells[1] ?? '')?.[1];
    if (!name || cells.length < 5) continue;
    const labels = [...(cells[3] ?? '').matchAll(/`([a-zA-Z_][a-zA-Z0-9_]*)`/g)].map((m) => m[1]!);
    families.set(name, { type: cells[2]!, labels });
  }
  return families;
}

const families = contractFamilies();
/** Labels Prometheus attaches to every scraped series, and `le` of histogram buckets. */
const TARGET_LABELS = ['job', 'instance', 'le'];
/** prometheus-adapter adds the HPA's namespace (a target label the ServiceMonitor attaches). */
const ADAPTER_LABELS = [...TARGET_LABELS, 'namespace'];

// ---------------------------------------------------------------------------------------------
// A PromQL scanner: enough to pull metric names, label matchers and grouping labels out of our
// own expressions. Whether an expression parses at all is promtool's job (below).

interface Selector {
  metric: string;
  matchers: string[];
}
interface Scanned {
  selectors: Selector[];
  grouping: string[];
}

const TOKEN =
  /\s+|#[^\n]*|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`|\[[^\]]*\]|[0-9][0-9a-zA-Z_.]*|[a-zA-Z_:][a-zA-Z0-9_:]*|=~|!~|!=|==|>=|<=|[-+*/%^=<>(){},@]/y;
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const AGGREGATORS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
]);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'atan2']);

function tokens(expr: string): string[] {
  const out: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < expr.length) {
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(expr);
    if (!m) throw new Error(`cannot scan PromQL at ${at}: ${expr.slice(at, at + 30)} in ${expr}`);
    if (!/^\s|^#/.test(m[0])) out.push(m[0]);
  }
  return out;
}

function scan(expr: string): Scanned {
  const t = tokens(expr);
  const selectors: Selector[] = [];
  const grouping: string[] = [];
  const matchersAt = (start: number): { names: string[]; metric?: string; end: number } => {
    const names: string[] = [];
    let metric: string | undefined;
    let i = start + 1;
    while (t[i] !== '}') {
      const [label, op, value] = [t[i], t[i + 1], t[i + 2]];
      if (!label || !op || !value || !/^["'`]/.test(value)) {
        throw new Error(`bad label matcher at "${t.slice(i, i + 3).join(' ')}" in ${expr}`);
      }
      if (label === '__name__' && op === '=') metric = value.slice(1, -1);
      else names.push(label);
      i += 3;
      if (t[i] === ',') i += 1;
    }
    return { names, metric, end: i };
  };
  for (let i = 0; i < t.length; i++) {
    const tok = t[i]!;
    if (tok === '{') {
      const { names, metric, end } = matchersAt(i);
      if (!metric) throw new Error(`selector without a metric name in ${expr}`);
      selectors.push({ metric, matchers: names });
      i = end;
      continue;
    }
    if (!/^[a-zA-Z_:]/.test(tok)) continue;
    if (GROUPING.has(tok)) {
      if (t[i + 1] === '(') {
        let j = i + 2;
        for (; t[j] !== ')'; j++) if (t[j] !== ',') grouping.push(t[j]!);
        i = j;
      }
      continue;
    }
    if (AGGREGATORS.has(tok) || KEYWORDS.has(tok) || t[i + 1] === '(') continue;
    if (t[i + 1] === '{') {
      const { names, end } = matchersAt(i + 1);
      selectors.push({ metric: tok, matchers: names });
      i = end;
    } else {
      selectors.push({ metric: tok, matchers: [] });
    }
  }
  return { selectors, grouping };
}

// ---------------------------------------------------------------------------------------------
// Every expression in deploy/, with where it came from

interface Expression {
  where: string;
  /** The expression as Prometheus receives it (template variables substituted). */
  expr: string;
  /** Labels allowed besides each family's own. */
  extraLabels: string[];
}

interface RuleGroup {
  name: string;
  rules: { record?: string; alert?: string; expr: string }[];
}

const rulesFile = parse(read('deploy/prometheus/rules.yml')) as { groups: RuleGroup[] };
const recorded = new Set(rulesFile.groups.flatMap((g) => g.rules.flatMap((r) => r.record ?? [])));

function ruleExpressions(): Expression[] {
  return rulesFile.groups.flatMap((g) =>
    g.rules.map((r) => ({
      where: `rules.yml ${g.name} ${r.record ?? r.alert}`,
      expr: r.expr,
      extraLabels: TARGET_LABELS,
    })),
  );
}

interface Target {
  refId: string;
  expr: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query: string };
  datasource?: { type?: string; uid?: string };
  multi?: boolean;
  includeAll?: boolean;
}
interface Dashboard {
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a template
const DATASOURCE_VAR = '${datasource}';
const dashboard = JSON.parse(read('deploy/grafana/dashboard.json')) as Dashboard;
const variables = dashboard.templating.list;

/** Every panel, rows' nested panels included, rows themselves excluded. */
function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => (p.type === 'row' ? allPanels(p.panels ?? []) : [p]));
}

/** Grafana's substitution, with values that keep the expression valid PromQL. */
function substituteVariables(expr: string): string {
  const names = new Set(variables.map((v) => v.name));
  const out = expr
    .replace(/\$__(rate_interval|interval|range)\b/g, '5m')
    .replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g, (whole, a, b, c) => {
      const name = (a ?? b ?? c) as string;
      if (!names.has(name)) throw new Error(`${whole} is not a dashboard variable: ${expr}`);
      return '.*';
    });
  return out;
}

function dashboardExpressions(): Expression[] {
  return allPanels(dashboard.panels).flatMap((p) =>
    (p.targets ?? []).map((t) => ({
      where: `dashboard panel "${p.title}" target ${t.refId}`,
      expr: substituteVariables(t.expr),
      extraLabels: TARGET_LABELS,
    })),
  );
}

const k8s = (file: string) => parse(read(`deploy/kubernetes/${file}`));

interface ScaledObject {
  spec: {
    scaleTargetRef: { name: string };
    triggers: { type: string; metadata: { query: string } }[];
  };
}
interface AdapterRule {
  seriesQuery: string;
  metricsQuery: string;
  name: { matches: string; as: string };
}
interface Hpa {
  apiVersion: string;
  spec: {
    scaleTargetRef: { name: string };
    metrics: {
      type: string;
      external: { metric: { name: string; selector: { matchLabels: Record<string, string> } } };
    }[];
  };
}

const scaledObjectFiles = readdirSync(join(deployDir, 'kubernetes')).filter((f) =>
  f.startsWith('keda-scaledobject'),
);
const hpa = k8s('hpa.yaml') as Hpa;
const adapterRules = (
  parse(
    (k8s('prometheus-adapter.yaml') as { data: { 'config.yaml': string } }).data['config.yaml'],
  ) as { externalRules: AdapterRule[] }
).externalRules;

function kubernetesExpressions(): Expression[] {
  const keda = scaledObjectFiles.flatMap((file) =>
    (k8s(file) as ScaledObject).spec.triggers
      .filter((t) => t.type === 'prometheus')
      .map((t, i) => ({
        where: `${file} trigger ${i}`,
        expr: t.metadata.query,
        extraLabels: TARGET_LABELS,
      })),
  );
  const adapter = adapterRules.flatMap((rule, i) => {
    // What the adapter sends for the HPA: the series, the HPA's selector plus its namespace.
    const series = scan(rule.seriesQuery).selectors[0]?.metric ?? '';
    const hpaMetric = hpa.spec.metrics.find((m) => m.external?.metric.name === rule.name.as);
    const matchers = Object.entries(hpaMetric?.external.metric.selector.matchLabels ?? {})
      .map(([k, v]) => `${k}="${v}"`)
      .concat('namespace="default"')
      .join(',');
    const metricsQuery = rule.metricsQuery
      .replaceAll('<<.Series>>', series)
      .replaceAll('<<.LabelMatchers>>', matchers)
      .replaceAll('<<.GroupBy>>', 'namespace');
    return [
      { where: `prometheus-adapter rule ${i} seriesQuery`, expr: rule.seriesQuery },
      { where: `prometheus-adapter rule ${i} metricsQuery`, expr: metricsQuery },
    ].map((e) => ({ ...e, extraLabels: ADAPTER_LABELS }));
  });
  return [...keda, ...adapter];
}

const expressions = () => [
  ...ruleExpressions(),
  ...dashboardExpressions(),
  ...kubernetesExpressions(),
];

/** The family a series name belongs to, or undefined when the contract has none. */
function familyOf(metric: string): Family | undefined {
  if (metric === 'up') return { type: 'gauge', labels: [] };
  const direct = families.get(metric);
  if (direct) return direct;
  const hist = /^(.*)_(bucket|sum|count)$/.exec(metric);
  const base = hist ? families.get(hist[1]!) : undefined;
  return base?.type === 'histogram' ? base : undefined;
}

// ---------------------------------------------------------------------------------------------

describe('deploy/: Prometheus rules', () => {
  withPromtool('promtool check rules accepts rules.yml', () => {
    promtool(['check', 'rules', 'deploy/prometheus/rules.yml']);
  });

  withPromtool('promtool test rules passes every unit test in rules.test.yml', () => {
    promtool(['test', 'rules', 'rules.test.yml'], join(deployDir, 'prometheus'));
  });

  it('recording rules are named level:metric:operation, alerts carry severity and annotations', () => {
    for (const group of rulesFile.groups) {
      for (const rule of group.rules) {
        if (rule.record) {
          expect(rule.record).toMatch(/^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$/);
        } else {
          const alert = rule as { alert: string; for?: string; labels?: Record<string, string> };
          const annotations = (rule as { annotations?: Record<string, string> }).annotations;
          expect(alert.labels?.severity, alert.alert).toMatch(/^(warning|critical)$/);
          expect(alert.for, alert.alert).toMatch(/^\d+[smh]$/);
          expect(annotations?.summary, alert.alert).toBeTruthy();
          expect(annotations?.description, alert.alert).toBeTruthy();
        }
      }
    }
  });

  it('the unit tests exercise every recording rule and every alert', () => {
    const tests = parse(read('deploy/prometheus/rules.test.yml')) as {
      tests: {
        promql_expr_test?: { expr: string }[];
        alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[];
      }[];
    };
    const exprs = tests.tests.flatMap((t) => (t.promql_expr_test ?? []).map((e) => e.expr));
    const alertTests = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const record of recorded) expect(exprs, record).toContain(record);
    for (const g of rulesFile.groups) {
      for (const { alert } of g.rules.filter((r) => r.alert)) {
        const cases = alertTests.filter((a) => a.alertname === alert);
        expect(
          cases.some((c) => c.exp_alerts.length > 0),
          `${alert} tested firing`,
        ).toBe(true);
        expect(
          cases.some((c) => c.exp_alerts.length === 0),
          `${alert} tested not firing`,
        ).toBe(true);
      }
    }
  });
});

describe('deploy/: every expression follows docs/metrics.md', () => {
  it('the contract table is read', () => {
    expect(families.size).toBeGreaterThan(10);
    expect(families.get('openclaw_rating_api_requests_total')?.labels).toEqual(['decision']);
    expect(families.get('openclaw_http_request_duration_seconds')?.type).toBe('histogram');
  });

  it('the scanner finds metrics, matchers and grouping labels', () => {
    expect(
      scan(
        'sum by (job) (rate(a_total{job="x", decision=~"d|e"}[5m] offset 1m)) / on (job) b > 0 or {__name__="c", l!="1"}',
      ),
    ).toEqual({
      selectors: [
        { metric: 'a_total', matchers: ['job', 'decision'] },
        { metric: 'b', matchers: [] },
        { metric: 'c', matchers: ['l'] },
      ],
      grouping: ['job', 'job'],
    });
  });

  it('names only contract families (or rules.yml records), matching only their labels', () => {
    const problems: string[] = [];
    const allLabels = new Set([...families.values()].flatMap((f) => f.labels));
    const list = expressions();
    expect(list.length).toBeGreaterThan(20);
    for (const { where, expr, extraLabels } of list) {
      const { selectors, grouping } = scan(expr);
      if (selectors.length === 0) problems.push(`${where}: no metric in ${expr}`);
      const inExpr = new Set(extraLabels);
      for (const { metric, matchers } of selectors) {
        const family = familyOf(metric);
        let allowed: Set<string>;
        if (family) {
          allowed = new Set([...family.labels, ...extraLabels]);
        } else if (metric.includes(':') && recorded.has(metric)) {
          allowed = new Set([...allLabels, ...extraLabels]);
        } else {
          problems.push(`${where}: ${metric} is not a family in docs/metrics.md`);
          continue;
        }
        for (const label of allowed) inExpr.add(label);
        for (const label of matchers) {
          if (!allowed.has(label)) problems.push(`${where}: ${metric} has no label ${label}`);
        }
      }
      for (const label of grouping) {
        if (!inExpr.has(label))
          problems.push(`${where}: groups by ${label}, which none of its metrics has`);
      }
    }
    expect(problems).toEqual([]);
  });

  withPromtool('every dashboard and autoscaler expression parses as PromQL', () => {
    const exprs = [...dashboardExpressions(), ...kubernetesExpressions()];
    const file = join(tmp, 'expressions.yml');
    writeFileSync(
      file,
      stringify({
        groups: [
          {
            name: 'deploy-expressions',
            rules: exprs.map((e, i) => ({ record: `deploy_expression_${i}`, expr: e.expr })),
          },
        ],
      }),
    );
    const output = promtool(['check', 'rules', file], tmp);
    expect(output).toContain(`${exprs.length} rules found`);
  });
});

describe('deploy/: Grafana dashboard', () => {
  const panels = allPanels(dashboard.panels);

  it('is a current dashboard with panels', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(panels.length).toBeGreaterThan(8);
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
  });

  it('every panel and target uses the datasource variable', () => {
    for (const panel of panels) {
      expect(panel.datasource?.uid, panel.title).toBe(DATASOURCE_VAR);
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        if (target.datasource) expect(target.datasource.uid, panel.title).toBe(DATASOURCE_VAR);
      }
    }
  });

  it('has the datasource, agent_id and resource variables', () => {
    const byName = new Map(variables.map((v) => [v.name, v]));
    expect(byName.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const agent = byName.get('agent_id');
    expect(agent).toMatchObject({ type: 'query', multi: true, includeAll: true });
    const query = (v?: Variable) => (typeof v?.query === 'string' ? v.query : v?.query?.query);
    expect(query(agent)).toBe('label_values(openclaw_agent_token_bucket, agent_id)');
    expect(query(byName.get('resource'))).toBe(
      'label_values(openclaw_tokens_used_total, resource)',
    );
    for (const v of variables.filter((v) => v.type === 'query')) {
      expect(v.datasource?.uid, v.name).toBe(DATASOURCE_VAR);
      const [, metric, label] = /^label_values\((\w+),\s*(\w+)\)$/.exec(query(v) ?? '') ?? [];
      expect(familyOf(metric ?? '')?.labels, `${v.name}: ${query(v)}`).toContain(label);
    }
  });

  it('has the panels the issue asks for', () => {
    const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    const has = (re: RegExp) =>
      expect(
        exprs.some((e) => re.test(e)),
        String(re),
      ).toBe(true);
    has(
      /sum by \(agent_id\) \(rate\(openclaw_tokens_used_total\{.*agent_id=~"\$agent_id".*resource=~"\$resource".*\}\[\$__rate_interval\]\)\)/,
    );
    has(/openclaw_agent_token_bucket/);
    has(/openclaw_token_bucket_utilisation/);
    has(/sum by \(decision\) \(rate\(openclaw_rating_api_requests_total/);
    has(/histogram_quantile\(0\.5, .*openclaw_http_request_duration_seconds_bucket/);
    has(/histogram_quantile\(0\.99, .*openclaw_http_request_duration_seconds_bucket/);
    has(/count\(up\{job="openclaw-edge"\}\)/);
    has(/openclaw_replication_lag_seconds/);
  });
});

describe('deploy/: Kubernetes manifests', () => {
  it('PrometheusRule carries exactly the groups of rules.yml', () => {
    const rule = k8s('prometheusrule.yaml') as { kind: string; spec: { groups: RuleGroup[] } };
    expect(rule.kind).toBe('PrometheusRule');
    expect(rule.spec.groups).toEqual(rulesFile.groups);
  });

  it('the edge ScaledObject runs the query the integration test checks', () => {
    const so = k8s('keda-scaledobject.yaml') as ScaledObject;
    expect(so.spec.scaleTargetRef.name).toBe('openclaw-edge');
    expect(so.spec.triggers[0]?.type).toBe('prometheus');
    expect(so.spec.triggers[0]?.metadata.query).toBe(
      'sum(rate(openclaw_rating_api_requests_total{job="openclaw-edge"}[2m]))',
    );
  });

  it('the HPA reads the External metric the adapter serves, on the same Deployment as KEDA', () => {
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    expect(hpa.spec.scaleTargetRef.name).toBe('openclaw-edge');
    const served = adapterRules.map((r) => r.name.as);
    for (const m of hpa.spec.metrics) expect(served).toContain(m.external.metric.name);
  });

  it('the HPA and the edge ScaledObject scale alike: same target per replica and bounds', () => {
    const so = k8s('keda-scaledobject.yaml') as {
      spec: {
        minReplicaCount: number;
        maxReplicaCount: number;
        triggers: { metricType?: string; metadata: { threshold: string } }[];
      };
    };
    const h = k8s('hpa.yaml') as {
      spec: {
        minReplicas: number;
        maxReplicas: number;
        metrics: { external: { target: { type: string; averageValue: string } } }[];
      };
    };
    const target = h.spec.metrics[0]?.external.target;
    expect(target?.type).toBe('AverageValue');
    expect(so.spec.triggers[0]?.metricType ?? 'AverageValue').toBe('AverageValue');
    expect(Number(so.spec.triggers[0]?.metadata.threshold)).toBe(Number(target?.averageValue));
    expect([so.spec.minReplicaCount, so.spec.maxReplicaCount]).toEqual([
      h.spec.minReplicas,
      h.spec.maxReplicas,
    ]);
  });

  it('the HPA and ScaledObject files say they are mutually exclusive', () => {
    for (const file of ['hpa.yaml', 'prometheus-adapter.yaml', ...scaledObjectFiles]) {
      expect(read(`deploy/kubernetes/${file}`), file).toMatch(/mutually exclusive/);
    }
  });

  it('the edge manifest: its config is valid, ports agree, and it is what the autoscalers scale', () => {
    const docs = parseAllDocuments(read('deploy/kubernetes/edge.yaml')).map(
      (d) => d.toJS() as { kind: string; metadata: { name: string } },
    );
    const byKind = <T>(kind: string, name: string): T => {
      const found = docs.find((d) => d.kind === kind && d.metadata.name === name);
      expect(found, `${kind} ${name}`).toBeDefined();
      return found as unknown as T;
    };
    const configMap = byKind<{ data: { 'edge.yaml': string } }>(
      'ConfigMap',
      'openclaw-edge-config',
    );
    const config = parseConfig(configMap.data['edge.yaml'], 'edge.yaml', {
      OPENCLAW_EDGE_REPLICATION_SECRET: 'a-secret-from-the-Secret-object',
    });
    expect(config.replication.transport).toBe('mesh');
    const deployment = byKind<{
      spec: {
        template: {
          spec: {
            containers: {
              ports: { name: string; containerPort: number }[];
              env: { name: string }[];
            }[];
          };
        };
      };
    }>('Deployment', 'openclaw-edge');
    expect(hpa.spec.scaleTargetRef.name).toBe('openclaw-edge');
    const container = deployment.spec.template.spec.containers[0] as {
      ports: { name: string; containerPort: number }[];
      env: { name: string }[];
    };
    const port = (name: string) => container.ports.find((p) => p.name === name)?.containerPort;
    expect(port('http')).toBe(config.server.port);
    expect(port('replication')).toBe(config.replication.mesh.port);
    expect(config.replication.mesh.dns?.port).toBe(config.replication.mesh.port);
    expect(container.env.map((e) => e.name)).toEqual(
      expect.arrayContaining(['OPENCLAW_EDGE_NODE_ID', 'OPENCLAW_EDGE_REPLICATION_SECRET']),
    );
    const peers = byKind<{
      spec: { clusterIP: string; publishNotReadyAddresses: boolean; ports: { port: number }[] };
    }>('Service', 'openclaw-edge-peers');
    expect(peers.spec.clusterIP).toBe('None');
    expect(peers.spec.publishNotReadyAddresses).toBe(true);
    expect(peers.spec.ports[0]?.port).toBe(config.replication.mesh.port);
    expect(config.replication.mesh.dns?.name.startsWith('openclaw-edge-peers.')).toBe(true);
  });

  it('the ServiceMonitor scrapes /metrics with a bearer token', () => {
    const sm = k8s('servicemonitor.yaml') as {
      spec: { endpoints: { path: string; authorization?: { type: string } }[] };
    };
    expect(sm.spec.endpoints[0]).toMatchObject({
      path: '/metrics',
      authorization: { type: 'Bearer' },
    });
  });
});

describe('deploy/: files', () => {
  const files = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? files(path) : [path];
    });

  it('every YAML file parses, and every manifest has apiVersion, kind and name', () => {
    const yamlFiles = files(deployDir).filter((f) => /\.ya?ml$/.test(f));
    expect(yamlFiles.length).toBeGreaterThan(6);
    for (const file of yamlFiles) {
      const docs = parseAllDocuments(readFileSync(file, 'utf8'));
      const name = relative(root, file);
      for (const doc of Array.isArray(docs) ? docs : [docs]) {
        expect(doc.errors.map(String), name).toEqual([]);
        expect(doc.warnings.map(String), name).toEqual([]);
        if (name.includes('kubernetes')) {
          expect(doc.toJS(), name).toMatchObject({
            apiVersion: expect.any(String),
            kind: expect.any(String),
            metadata: { name: expect.any(String) },
          });
        }
      }
    }
  });

  it('no machine paths', () => {
    for (const file of files(deployDir)) {
      expect(readFileSync(file, 'utf8'), file).not.toMatch(/\/(work|home|root|tmp|Users)\//);
    }
  });
});
