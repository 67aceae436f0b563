// Named error types for failures a user can cause or hit.
// Every message says what was wrong, where, and (through `hint`) what to do.

export class BuckleError extends Error {
  /** What the user can do about it, printed by the CLI under the message. */
  readonly hint?: string;
  constructor(message: string, options?: { hint?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options?.hint;
  }
}

/** A file is not what it claims to be: truncated, corrupt, or with inconsistent headers. */
export class FileFormatError extends BuckleError {
  constructor(
    readonly file: string,
    readonly offset: number | undefined,
    message: string,
    options?: { hint?: string; cause?: unknown },
  ) {
    super(`${file}${offset === undefined ? "" : ` @ byte ${offset}`}: ${message}`, options);
  }
}

/** Bad user input (flags, config values, dataset rows). */
export class InputError extends BuckleError {}

/** Something needed is not available on this machine (offline, missing binary, ...). */
export class UnavailableError extends BuckleError {}
