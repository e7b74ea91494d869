// The API's permission rule (src/core/perm.c, lk_perm_valid): 1–128 bytes of
// segments separated by ':'; each segment is non-empty and either exactly '*' or
// made of a-z 0-9 _ . -
export const PERM_MAX_LEN = 128;
const SEG = /^[a-z0-9_.-]+$/;

export function permError(p) {
  if (p.length === 0) return 'A permission cannot be empty.';
  if (new TextEncoder().encode(p).length > PERM_MAX_LEN) return `A permission is at most ${PERM_MAX_LEN} bytes.`;
  const segs = p.split(':');
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i];
    if (s === '') return `“${p}”: segment ${i + 1} is empty (write resource:action).`;
    if (s !== '*' && !SEG.test(s))
      return `“${p}”: segment “${s}” may hold only a–z, 0–9, _ . - or be exactly *.`;
  }
  return null;
}

// Splits free entry on commas and whitespace.
export function parsePerms(text) {
  return text.split(/[\s,]+/).filter((x) => x.length > 0);
}
