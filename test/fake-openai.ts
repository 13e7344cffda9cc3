/**
 * A real OpenAI-compatible HTTP server for tests, on a random loopback port. It speaks the wire protocol
 * the `openai` client speaks (/v1/chat/completions, /v1/models, usage fields; no streaming), so the LLM
 * layer is always exercised through real HTTP, never through a mocked client.
 *
 *   const fake = await startFakeOpenAI();
 *   fake.on(/list the attributes/i, 'title, author, price');       // canned answer by prompt content
 *   fake.on((req) => req.n > 1, (req, i) => `candidate ${i}`);      // n candidates from a function
 *   fake.fault({ status: 429, retryAfter: 0.05 }, { times: 3 });    // faults on demand, consumed first
 *   process.env.OPENAI_BASE_URL = fake.url;                          // ends in /v1
 *   fake.chatRequests.length; fake.maxInFlight;                      // what the server saw
 *   await fake.close();
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { countTokens } from '../src/llm/tokens.js';

export interface FakeMessage {
  role: string;
  content: string;
}

/** A received /v1/chat/completions body, normalized so rules can match it easily. */
export interface FakeChatRequest {
  model: string;
  messages: FakeMessage[];
  /** All message contents joined by newlines: what string/regex rules match against. */
  prompt: string;
  n: number;
  temperature: number | undefined;
  maxTokens: number | undefined;
  stop: string[] | undefined;
  jsonMode: boolean;
  body: Record<string, unknown>;
}

export interface ReceivedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  /** Parsed body of a chat completion, undefined for other routes or unparseable bodies. */
  chat: FakeChatRequest | undefined;
  /** What the server did: 'ok', a fault kind, or 'unmatched'. */
  outcome: string;
  at: number;
}

export type Matcher = string | RegExp | ((req: FakeChatRequest) => boolean);

/** A full reply, when a rule needs to set usage or finish_reason itself. */
export interface FakeReply {
  texts: string[];
  usage?: { prompt_tokens: number; completion_tokens: number };
  finishReason?: string;
  model?: string;
}

/**
 * string: the same text for every candidate; string[]: candidate i gets texts[i % length];
 * function: called once per candidate with its index, or may return a whole FakeReply.
 */
export type Answer =
  | string
  | string[]
  | ((req: FakeChatRequest, candidate: number) => string | FakeReply | Promise<string | FakeReply>);

export type Fault =
  /** An HTTP error with an OpenAI-style error body; retryAfter (seconds, or an HTTP date) goes into Retry-After. */
  | { status: number; retryAfter?: number | string; retryAfterMs?: number; message?: string }
  /** Never answers; the connection stays open until the client gives up or the server closes. */
  | { kind: 'hang' }
  /** Answers normally after a delay. */
  | { kind: 'delay'; ms: number }
  /** 200 with a body that is not JSON. */
  | { kind: 'malformed' }
  /** Destroys the socket without a response. */
  | { kind: 'reset' };

interface Rule {
  match: Matcher;
  answer: Answer;
  times: number; // Infinity = unlimited
  hits: number;
}

interface FaultRule {
  fault: Fault;
  match: Matcher | undefined;
  times: number;
}

export interface FakeOpenAI {
  /** Base URL ending in /v1, as OPENAI_BASE_URL expects. */
  readonly url: string;
  readonly port: number;
  /** Every request received, in arrival order (including faulted and unmatched ones). */
  readonly requests: ReceivedRequest[];
  /** Only the chat completion requests. */
  readonly chatRequests: FakeChatRequest[];
  /** Chat completion requests being handled right now, and the most at once since start/reset. */
  readonly inFlight: number;
  readonly maxInFlight: number;
  /** Canned answer for chat requests whose prompt matches; first matching rule wins. */
  on(match: Matcher, answer: Answer, options?: { times?: number }): FakeOpenAI;
  /** Answer for anything no rule matched (default: a 400 error naming the unmatched prompt). */
  otherwise(answer: Answer): FakeOpenAI;
  /** Queue a fault for the next `times` chat requests (optionally only those matching). Faults win over rules. */
  fault(fault: Fault, options?: { times?: number; match?: Matcher }): FakeOpenAI;
  /** Latency added to every successful answer, to make concurrency observable. */
  setLatency(ms: number): FakeOpenAI;
  /** Model ids listed by /v1/models. */
  setModels(ids: string[]): FakeOpenAI;
  /** Forget rules, faults, the request log and the in-flight high-water mark. */
  reset(): FakeOpenAI;
  close(): Promise<void>;
}

function matches(match: Matcher | undefined, req: FakeChatRequest): boolean {
  if (match === undefined) return true;
  if (typeof match === 'string') return req.prompt.includes(match);
  if (match instanceof RegExp) {
    match.lastIndex = 0; // a /g regex keeps state between calls
    return match.test(req.prompt);
  }
  return match(req);
}

function contentToString(content: unknown): string {
  if (typeof content === 'string') return content;
  // The array form of content: keep the text parts.
  if (Array.isArray(content)) {
    return content
      .map((part) => (part && typeof part === 'object' && 'text' in part ? String((part as { text: unknown }).text) : ''))
      .join('');
  }
  return '';
}

function normalizeChat(body: Record<string, unknown>): FakeChatRequest {
  const raw = Array.isArray(body.messages) ? body.messages : [];
  const messages = raw.map((m: { role?: unknown; content?: unknown }) => ({
    role: String(m?.role ?? ''),
    content: contentToString(m?.content),
  }));
  const stop = body.stop === undefined || body.stop === null ? undefined : Array.isArray(body.stop) ? body.stop.map(String) : [String(body.stop)];
  const responseFormat = body.response_format as { type?: string } | undefined;
  const maxTokens = (body.max_completion_tokens ?? body.max_tokens) as number | undefined;
  return {
    model: String(body.model ?? ''),
    messages,
    prompt: messages.map((m) => m.content).join('\n'),
    n: typeof body.n === 'number' ? body.n : 1,
    temperature: typeof body.temperature === 'number' ? body.temperature : undefined,
    maxTokens: typeof maxTokens === 'number' ? maxTokens : undefined,
    stop,
    jsonMode: responseFormat?.type === 'json_object' || responseFormat?.type === 'json_schema',
    body,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function sendJson(res: http.ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(payload);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function errorBody(message: string, type: string, code: string | null = null) {
  return { error: { message, type, param: null, code } };
}

export async function startFakeOpenAI(options: { models?: string[]; /** 0 (default): any free port */ port?: number } = {}): Promise<FakeOpenAI> {
  let rules: Rule[] = [];
  let faults: FaultRule[] = [];
  let fallback: Answer | undefined;
  let latencyMs = 0;
  let models = options.models ?? ['fake-model'];
  let inFlight = 0;
  let maxInFlight = 0;
  let completionCounter = 0;
  const requests: ReceivedRequest[] = [];
  const chatRequests: FakeChatRequest[] = [];

  async function answerTexts(answer: Answer, req: FakeChatRequest): Promise<FakeReply> {
    if (typeof answer === 'string') return { texts: Array.from({ length: req.n }, () => answer) };
    if (Array.isArray(answer)) return { texts: Array.from({ length: req.n }, (_, i) => answer[i % answer.length]!) };
    const texts: string[] = [];
    for (let i = 0; i < req.n; i++) {
      const out = await answer(req, i);
      if (typeof out !== 'string') return out; // a whole reply covers all candidates
      texts.push(out);
    }
    return { texts };
  }

  async function handleChat(
    reqLog: ReceivedRequest,
    rawBody: string,
    res: http.ServerResponse,
    socket: import('node:net').Socket,
  ): Promise<void> {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(rawBody) as Record<string, unknown>;
    } catch {
      reqLog.outcome = 'bad_request';
      sendJson(res, 400, errorBody('Request body is not valid JSON.', 'invalid_request_error'));
      return;
    }
    const chat = normalizeChat(body);
    reqLog.chat = chat;
    chatRequests.push(chat);

    const faultIndex = faults.findIndex((f) => f.times > 0 && matches(f.match, chat));
    if (faultIndex >= 0) {
      const rule = faults[faultIndex]!;
      rule.times -= 1;
      if (rule.times <= 0) faults.splice(faultIndex, 1);
      const fault = rule.fault;
      if ('status' in fault) {
        reqLog.outcome = `status_${fault.status}`;
        const headers: Record<string, string> = {};
        if (fault.retryAfter !== undefined) headers['retry-after'] = String(fault.retryAfter);
        if (fault.retryAfterMs !== undefined) headers['retry-after-ms'] = String(fault.retryAfterMs);
        const type = fault.status === 429 ? 'rate_limit_error' : fault.status >= 500 ? 'server_error' : 'invalid_request_error';
        sendJson(res, fault.status, errorBody(fault.message ?? `fake fault ${fault.status}`, type), headers);
        return;
      }
      switch (fault.kind) {
        case 'hang':
          reqLog.outcome = 'hang';
          return; // leave the response open; close() tears the connection down
        case 'reset':
          reqLog.outcome = 'reset';
          socket.destroy();
          return;
        case 'malformed': {
          reqLog.outcome = 'malformed';
          const text = '{"id": "chatcmpl-broken", "choices": [ {"message": ';
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
          res.end(text);
          return;
        }
        case 'delay':
          reqLog.outcome = 'delay';
          await sleep(fault.ms);
          break;
      }
    }

    const rule = rules.find((r) => r.hits < r.times && matches(r.match, chat));
    const answer = rule?.answer ?? fallback;
    if (answer === undefined) {
      reqLog.outcome = 'unmatched';
      const preview = chat.prompt.slice(0, 200);
      sendJson(res, 400, errorBody(`fake server: no rule matches the prompt: ${preview}`, 'invalid_request_error', 'fake_unmatched'));
      return;
    }
    if (rule) rule.hits += 1;
    const reply = await answerTexts(answer, chat);
    if (latencyMs > 0) await sleep(latencyMs);
    if (res.destroyed || socket.destroyed) return; // the client gave up while we were "thinking"
    if (reqLog.outcome === 'pending') reqLog.outcome = 'ok';
    const promptTokens = countTokens(chat.messages.map((m) => m.content).join('\n'));
    const completionTokens = reply.texts.reduce((sum, t) => sum + countTokens(t), 0);
    sendJson(res, 200, {
      id: `chatcmpl-fake-${++completionCounter}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: reply.model ?? chat.model,
      choices: reply.texts.map((text, index) => ({
        index,
        message: { role: 'assistant', content: text, refusal: null },
        logprobs: null,
        finish_reason: reply.finishReason ?? 'stop',
      })),
      usage: {
        prompt_tokens: reply.usage?.prompt_tokens ?? promptTokens,
        completion_tokens: reply.usage?.completion_tokens ?? completionTokens,
        total_tokens:
          (reply.usage?.prompt_tokens ?? promptTokens) + (reply.usage?.completion_tokens ?? completionTokens),
      },
    });
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const reqLog: ReceivedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      headers: req.headers,
      chat: undefined,
      outcome: 'pending',
      at: Date.now(),
    };
    requests.push(reqLog);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      if (req.method === 'GET' && url.pathname === '/v1/models') {
        reqLog.outcome = 'ok';
        sendJson(res, 200, {
          object: 'list',
          data: models.map((id) => ({ id, object: 'model', created: 0, owned_by: 'fake' })),
        });
        return;
      }
      if (req.method === 'POST' && url.pathname === '/v1/chat/completions') {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        let counted = true;
        const done = () => {
          if (counted) {
            counted = false;
            inFlight -= 1;
          }
        };
        // A hung or reset request leaves flight when its connection goes away.
        res.on('close', done);
        handleChat(reqLog, rawBody, res, req.socket).catch((err: unknown) => {
          reqLog.outcome = 'error';
          if (!res.headersSent) sendJson(res, 500, errorBody(`fake server crashed: ${String(err)}`, 'server_error'));
        });
        return;
      }
      reqLog.outcome = 'not_found';
      sendJson(res, 404, errorBody(`Unknown route ${req.method} ${url.pathname}`, 'invalid_request_error'));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  const fake: FakeOpenAI = {
    url: `http://127.0.0.1:${port}/v1`,
    port,
    requests,
    chatRequests,
    get inFlight() {
      return inFlight;
    },
    get maxInFlight() {
      return maxInFlight;
    },
    on(match, answer, opts = {}) {
      rules.push({ match, answer, times: opts.times ?? Infinity, hits: 0 });
      return fake;
    },
    otherwise(answer) {
      fallback = answer;
      return fake;
    },
    fault(fault, opts = {}) {
      faults.push({ fault, match: opts.match, times: opts.times ?? 1 });
      return fake;
    },
    setLatency(ms) {
      latencyMs = ms;
      return fake;
    },
    setModels(ids) {
      models = ids;
      return fake;
    },
    reset() {
      rules = [];
      faults = [];
      fallback = undefined;
      latencyMs = 0;
      requests.length = 0;
      chatRequests.length = 0;
      maxInFlight = inFlight;
      return fake;
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // hung requests would otherwise keep close() waiting forever
      });
    },
  };
  return fake;
}
