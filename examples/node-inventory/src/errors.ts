// Annals' errors, typed: one mapping from SQLSTATE to a class, with the JSON DETAIL parsed into
// fields (Annals promises the DETAIL, not the message, to programs). The same mapping as
// goapi/errors.go in the Go package; every class keeps the node-postgres DatabaseError as its
// `cause`, so the SQLSTATE, message, HINT and CONTEXT stay reachable.
import { DatabaseError } from 'pg';
import { int8 } from './int8';

/** The base of every error Annals raises: `code` is the SQLSTATE, `detail` the parsed JSON DETAIL ({} when there is none). */
export class AnnalsError extends Error {
    readonly code: string;
    readonly detail: Record<string, unknown>;
    readonly hint: string | undefined;
    override readonly cause: DatabaseError;

    constructor(cause: DatabaseError, detail: Record<string, unknown>) {
        super(cause.message, { cause });
        this.name = new.target.name;
        this.code = cause.code ?? '';
        this.detail = detail;
        this.hint = cause.hint;
        this.cause = cause;
    }
}

/** ST409: the stream was not at the expected version. `expected` is null for "any". */
export class WrongExpectedVersionError extends AnnalsError {
    readonly streamId: string = str(this.detail.stream_id);
    readonly expected: number | null = this.detail.expected == null ? null : num(this.detail.expected, 'expected');
    readonly actual: number = num(this.detail.actual, 'actual');
}

/** ST412: an event id is already stored with other content or at another position. */
export class EventIdConflictError extends AnnalsError {
    readonly streamId: string = str(this.detail.stream_id);
    readonly eventId: string = str(this.detail.event_id);
}

/** ST410: the stream is deleted and takes no appends. */
export class StreamDeletedError extends AnnalsError {
    readonly streamId: string = str(this.detail.stream_id);
}

/** ST413: an event or a batch is over a configured limit. */
export class TooLargeError extends AnnalsError {
    readonly setting: string = str(this.detail.setting);
    readonly limit: number = num(this.detail.limit, 'limit');
    readonly actual: number = num(this.detail.actual, 'actual');
}

/** ST422: an argument failed validation; `argument` names it as the SQL function does (e.g. "events[0].type"). */
export class InvalidArgumentError extends AnnalsError {
    readonly argument: string = str(this.detail.argument);
    readonly reason: string = str(this.detail.reason);
}

/** ST403: a stream id, event type or subscription name uses the reserved "$" prefix. */
export class ReservedNameError extends AnnalsError {
    readonly argument: string = str(this.detail.argument);
}

/** ST405: an UPDATE, DELETE or TRUNCATE of history. */
export class AppendOnlyError extends AnnalsError {}

/** ST404: no such subscription, projection or dead letter. */
export class NotFoundError extends AnnalsError {}

/** 42501: the login lacks a privilege the call needs (grant it annals_writer, annals_reader or annals_bi). */
export class PermissionDeniedError extends AnnalsError {}

/** 40001, 40P01, 55P03: a transient concurrency failure; run the whole transaction again. */
export class RetryTransactionError extends AnnalsError {}

/** An inline projection's handler failed inside an append, so the append wrote nothing. `cause.code` is the handler's SQLSTATE. */
export class ProjectionError extends AnnalsError {
    readonly projection: string;
    constructor(cause: DatabaseError, detail: Record<string, unknown>, projection: string) {
        super(cause, detail);
        this.projection = projection;
        this.message = `inline projection "${projection}" failed: ${cause.message} (SQLSTATE ${this.code})`;
    }
}

type ErrorClass = new (cause: DatabaseError, detail: Record<string, unknown>) => AnnalsError;

const bySqlState: Record<string, ErrorClass> = {
    ST409: WrongExpectedVersionError,
    ST412: EventIdConflictError,
    ST410: StreamDeletedError,
    ST413: TooLargeError,
    ST422: InvalidArgumentError,
    ST403: ReservedNameError,
    ST405: AppendOnlyError,
    ST404: NotFoundError,
    '42501': PermissionDeniedError,
    '40001': RetryTransactionError,
    '40P01': RetryTransactionError,
    '55P03': RetryTransactionError,
};

// Inline dispatch calls each handler through a frame named after its projection.
const inlineFrame = /function annals_internal\."inline projection ((?:[^"]|"")*)"\(annals\.event\[\]\)/;

/** Turns an error from Annals' SQL functions into its typed error; anything else (and errors already mapped) comes back unchanged. */
export function mapError(err: unknown): unknown {
    if (!(err instanceof DatabaseError) || err.code === undefined) {
        return err;
    }
    const detail = parseDetail(err.detail);
    const frame = err.where === undefined ? null : inlineFrame.exec(err.where);
    if (frame?.[1] !== undefined) {
        return new ProjectionError(err, detail, frame[1].replaceAll('""', '"'));
    }
    const cls = bySqlState[err.code];
    return cls === undefined ? err : new cls(err, detail);
}

function parseDetail(text: string | undefined): Record<string, unknown> {
    if (text === undefined || !text.startsWith('{')) {
        return {};
    }
    try {
        const parsed: unknown = JSON.parse(text);
        return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
    } catch {
        return {}; // the message and the SQLSTATE still say what happened
    }
}

function str(value: unknown): string {
    return typeof value === 'string' ? value : '';
}

// A number from the DETAIL: 0 when absent (the message still says what happened), checked like
// every bigint when present.
function num(value: unknown, what: string): number {
    return value === undefined ? 0 : int8(value, what);
}
