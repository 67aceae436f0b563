// The error a batch throws when some of its requests failed for good: it carries every finished result
// (in request order) and one error per failed request, so callers keep the work that was already done.

import { BuckleError } from "../../util/errors.js";

export class BatchError<T> extends BuckleError {
  constructor(
    /** One slot per request, in request order: the result, or undefined where the request failed. */
    readonly results: (T | undefined)[],
    /** One slot per request: the error of a failed request, undefined where it succeeded. */
    readonly errors: (Error | undefined)[],
    what: string,
  ) {
    const failed = errors.filter((e) => e !== undefined);
    const first = failed[0];
    const firstIndex = errors.findIndex((e) => e !== undefined);
    super(
      `${failed.length} of ${errors.length} ${what} requests failed; ${errors.length - failed.length} finished` +
        (first ? ` (first failure, request ${firstIndex}: ${first.message})` : ""),
      {
        hint:
          "BatchError.results keeps the finished results and BatchError.errors says why each other one failed; " +
          "retry only the failed requests",
        cause: first,
      },
    );
  }

  /** Indexes of the failed requests. */
  get failedIndexes(): number[] {
    return this.errors.flatMap((e, i) => (e === undefined ? [] : [i]));
  }
}
