import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES } from '@openclaw-edge/core';
import { HTTP_ERROR_CODES } from '@openclaw-edge/server';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

/** Which workspace packages each package may import (DESIGN §2: dependencies point inward). */
const allowed: Record<string, readonly string[]> = {
  core: [],
  engine: ['core'],
  rating: ['core'],
  server: ['core', 'engine', 'rating'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

describe('repository layout', () => {
  it('every package is listed with its allowed dependencies', () => {
    expect(readdirSync(join(root, 'packages')).sort()).toEqual(Object.keys(allowed).sort());
  });

  for (const [pkg, deps] of Object.entries(allowed)) {
    it(`${pkg} imports only ${deps.length ? deps.join(', ') : 'nothing of ours'}, through public entries`, () => {
      for (const file of sourceFiles(join(root, 'packages', pkg, 'src'))) {
        const text = readFileSync(file, 'utf8');
        for (const [, target] of text.matchAll(/from '(@openclaw-edge\/[^']+)'/g)) {
          const [, name, subpath] = /^@openclaw-edge\/([^/]+)(\/.*)?$/.exec(target as string) ?? [];
          expect(deps, `${file} imports ${target}`).toContain(name);
          expect(subpath, `${file} reaches into ${target}`).toBeUndefined();
        }
        expect(text, `${file} imports another package by path`).not.toMatch(/from '\.\.\/\.\.\//);
      }
    });
  }

  it('the simulator (sim/) drives the engine only through public entries', () => {
    for (const file of sourceFiles(join(root, 'sim'))) {
      const text = readFileSync(file, 'utf8');
      for (const [, target] of text.matchAll(/from '(@openclaw-edge\/[^']+)'/g)) {
        expect(target, `${file} reaches into ${target}`).toMatch(/^@openclaw-edge\/(core|engine)$/);
      }
      expect(text, `${file} imports a package by path`).not.toMatch(/from '(\.\.\/)+packages\//);
    }
  });

  it('core and rating do no I/O and read no clock', () => {
    for (const file of [
      ...sourceFiles(join(root, 'packages', 'core', 'src')),
      ...sourceFiles(join(root, 'packages', 'rating', 'src')),
    ]) {
      const text = readFileSync(file, 'utf8');
      expect(text, file).not.toMatch(/from 'node:|Date\.now|performance\.now|process\./);
    }
  });

  it('docs/errors.md documents exactly the error codes the code raises', () => {
    const doc = readFileSync(join(root, 'docs', 'errors.md'), 'utf8');
    const documented = [...doc.matchAll(/^\| `([A-Z_]+)`\s*\|/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual([...ERROR_CODES].sort());
  });

  it('docs/api.md documents exactly the HTTP error codes, with their statuses', () => {
    const doc = readFileSync(join(root, 'docs', 'api.md'), 'utf8');
    const documented = Object.fromEntries(
      [...doc.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]),
    );
    expect(documented).toEqual(HTTP_ERROR_CODES);
  });
});
