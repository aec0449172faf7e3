import { globToRegExp, isGlob } from '@openclaw-edge/core';
import { describe, expect, it } from 'vitest';

describe('globs', () => {
  it('treat * as any run, ? as one character, everything else literally', () => {
    expect(globToRegExp('team-*').test('team-a')).toBe(true);
    expect(globToRegExp('team-*').test('team-')).toBe(true);
    expect(globToRegExp('team-*').test('xteam-a')).toBe(false);
    expect(globToRegExp('gpt-4?').test('gpt-4o')).toBe(true);
    expect(globToRegExp('gpt-4?').test('gpt-4')).toBe(false);
    expect(globToRegExp('a.b+(c)').test('a.b+(c)')).toBe(true);
    expect(globToRegExp('a.b').test('axb')).toBe(false);
    expect(globToRegExp('代理-*').test('代理-7')).toBe(true);
    expect(globToRegExp('?').test('🙂')).toBe(true);
    expect(globToRegExp('*').test('line\nbreak')).toBe(true);
  });

  it('tell patterns from exact ids', () => {
    expect(isGlob('agent-42')).toBe(false);
    expect(isGlob('agent-*')).toBe(true);
    expect(isGlob('agent-?')).toBe(true);
  });
});
