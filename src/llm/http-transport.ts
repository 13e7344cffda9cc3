/**
 * The HTTP transport under the OpenAI-compatible provider. Node's built-in fetch (undici) gives up on a
 * response whose headers take longer than 300 s, whatever timeout the client was given: exactly the slow
 * local endpoints (Ollama, llama.cpp on a CPU) that need more. So the provider gets its own undici Agent
 * whose header and body timeouts follow our timeout setting (0 = none), and the per-call timeout wrapper
 * stays the one limit that decides.
 */
import { Agent, fetch as undiciFetch } from 'undici';

export interface TransportOptions {
  /** Longest wait for a response's headers, and longest silence while its body streams; 0 = no limit. */
  timeoutMs: number;
}

export interface Transport {
  fetch: typeof globalThis.fetch;
  /** What the agent was built with (for diagnostics and tests). */
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  close(): Promise<void>;
}

export function createTransport(options: TransportOptions): Transport {
  const timeout = options.timeoutMs > 0 ? Math.ceil(options.timeoutMs) : 0;
  const agent = new Agent({ headersTimeout: timeout, bodyTimeout: timeout });
  // The openai client turns any error whose text mentions a timeout into its own cause-less timeout error,
  // so the agent's limit is carried out under a name and message that do not, as the error's cause.
  const fetch = (async (input: Parameters<typeof undiciFetch>[0], init?: Parameters<typeof undiciFetch>[1]) => {
    try {
      return await undiciFetch(input, { ...init, dispatcher: agent });
    } catch (err) {
      throw timeout > 0 && isTransportTimeout(err) ? new SlowEndpointError(timeout) : err;
    }
  }) as unknown as typeof globalThis.fetch;
  return { fetch, headersTimeoutMs: timeout, bodyTimeoutMs: timeout, close: () => agent.close() };
}

/** The agent gave up waiting for a response (its header or body timeout). */
export class SlowEndpointError extends Error {
  constructor(readonly limitMs: number) {
    super(`no answer within the transport's ${limitMs} ms limit`);
    this.name = 'SlowEndpointError';
  }
}

/** The undici error codes of a transport-level timeout, wherever they sit in an error's cause chain. */
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

export function isTransportTimeout(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 6; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && TIMEOUT_CODES.has(code)) return true;
  }
  return false;
}
