// PostgreSQL's bigint (int8) is 64 bits; a JavaScript number holds integers exactly only up to
// 2^53 - 1. node-postgres therefore returns bigint columns as decimal strings, and Annals' JSON
// DETAILs carry versions as JSON numbers. This service converts both deliberately, in one place:
// stream versions and global positions become numbers, checked to be safe integers, because they
// are counted in events (2^53 events is far beyond any store) and numbers are what application
// code compares, adds and serializes to JSON (a BigInt makes JSON.stringify throw). A value
// that is not a safe integer is an error, never a silently rounded number. Transaction ids
// (xid8) stay strings: they are opaque tokens here, handed back to the database as they are.

/** Converts a bigint from node-postgres (a string) or from a JSON DETAIL (a number) to a number, or throws a RangeError when it is not an integer a number holds exactly. */
export function int8(value: unknown, what: string): number {
    let n: number;
    if (typeof value === 'string' && /^-?\d+$/.test(value)) {
        n = Number(value);
    } else if (typeof value === 'number' || typeof value === 'bigint') {
        n = Number(value);
    } else {
        throw new RangeError(`${what}: expected a bigint, got ${JSON.stringify(value) ?? String(value)}`);
    }
    if (!Number.isSafeInteger(n) || (typeof value !== 'number' && BigInt(value) !== BigInt(n))) {
        throw new RangeError(`${what}: ${String(value)} is beyond Number.MAX_SAFE_INTEGER; read it as a string or a BigInt`);
    }
    return n;
}
