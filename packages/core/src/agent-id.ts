import { describeValue, InvalidAgentIdError } from './errors.js';

/** Longest agent id, in UTF-16 code units: at most 768 UTF-8 bytes, inside the wire format's 1024. */
export const MAX_AGENT_ID_LENGTH = 256;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** True when `text` holds an unpaired UTF-16 surrogate (it would not survive UTF-8 intact). */
export function hasLoneSurrogate(text: string): boolean {
  return LONE_SURROGATE.test(text);
}

/**
 * Checks an agent id: 1-256 characters of any script, no control characters, well-formed
 * Unicode. Ids that break these rules would be renamed or refused on the wire, so they are
 * refused before any state exists for them.
 */
export function validateAgentId(id: unknown, field = 'agent_id'): asserts id is string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_AGENT_ID_LENGTH) {
    throw new InvalidAgentIdError(
      field,
      `must be a string of 1-${MAX_AGENT_ID_LENGTH} characters (got ${describeValue(id)})`,
    );
  }
  if (hasControlCharacter(id))
    throw new InvalidAgentIdError(field, 'must not contain control characters');
  if (hasLoneSurrogate(id))
    throw new InvalidAgentIdError(
      field,
      'must be well-formed Unicode (an unpaired surrogate was found)',
    );
}

function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}
