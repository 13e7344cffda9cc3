/**
 * Requests actually sent for one logical call. The ledger keeps one row per logical call, outside the
 * retry loop; the retry wrapper, which sees every attempt, counts them into a tally the ledger puts on the
 * context, so a call that succeeded on its third attempt is recorded as 3 requests with 2 failures.
 */
import type { CallContext } from './types.js';

export interface AttemptTally {
  sent: number;
  failed: number;
}

const TALLY = Symbol('attemptTally');
type TalliedContext = CallContext & { [TALLY]?: AttemptTally };

export function withAttemptTally(context: CallContext, tally: AttemptTally): CallContext {
  return { ...context, [TALLY]: tally } as TalliedContext;
}

export function attemptTallyOf(context: CallContext): AttemptTally | undefined {
  return (context as TalliedContext)[TALLY];
}
