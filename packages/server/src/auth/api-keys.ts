import { createHash, timingSafeEqual } from 'node:crypto';
import { IdMatcher } from '../config/glob.js';
import type { Config, Scope } from '../config/schema.js';

/** Who made a request, once authenticated. */
export interface Principal {
  readonly name: string;
  readonly scopes: ReadonlySet<Scope>;
  /** Undefined: may act for any agent. */
  readonly agents: IdMatcher | undefined;
}

/** The principal of unauthenticated loopback access when no key is configured. */
export const LOOPBACK_PRINCIPAL: Principal = {
  name: 'loopback',
  scopes: new Set<Scope>(['check', 'admin', 'metrics']),
  agents: undefined,
};

/**
 * API keys from config, held only as SHA-256 digests. A presented key is hashed and compared
 * against every configured digest with a constant-time comparison, without stopping at the first
 * match, so timing tells nothing about which digests exist.
 */
export class ApiKeys {
  private readonly keys: { digest: Buffer; principal: Principal }[];

  constructor(config: Config['api_keys']) {
    this.keys = config.map((k) => ({
      digest: Buffer.from(k.sha256, 'hex'),
      principal: {
        name: k.name,
        scopes: new Set(k.scopes),
        agents: k.agents === undefined ? undefined : new IdMatcher(k.agents),
      },
    }));
  }

  /** True when keys are configured (otherwise the server admits loopback clients only). */
  get enabled(): boolean {
    return this.keys.length > 0;
  }

  /** The principal a presented secret belongs to, or undefined. */
  authenticate(secret: string): Principal | undefined {
    const digest = sha256(secret);
    let found: Principal | undefined;
    for (const key of this.keys) {
      if (timingSafeEqual(key.digest, digest) && found === undefined) found = key.principal;
    }
    return found;
  }
}

/** SHA-256 digest of a key, as stored in config (`openclaw-edge key hash` prints it in hex). */
export function sha256(secret: string): Buffer {
  return createHash('sha256').update(secret, 'utf8').digest();
}

/** True when `principal` may act for `agentId`. */
export function mayActFor(principal: Principal, agentId: string): boolean {
  return principal.agents === undefined || principal.agents.matches(agentId);
}
