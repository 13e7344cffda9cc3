/** The public REST API, with the API key (when the service has one) sent as a bearer token. */
const KEY_STORAGE = 'evaporate.apiKey';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body?: unknown,
  ) {
    super(message);
  }
}

export const apiKey = {
  get: (): string => sessionStorage.getItem(KEY_STORAGE) ?? '',
  set: (key: string) => sessionStorage.setItem(KEY_STORAGE, key),
  clear: () => sessionStorage.removeItem(KEY_STORAGE),
};

/** Called on every 401 so the app can ask for the key again. */
let onUnauthorized: () => void = () => {};
export function whenUnauthorized(fn: () => void): void {
  onUnauthorized = fn;
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const key = apiKey.get();
  return key ? { ...extra, authorization: `Bearer ${key}` } : extra;
}

async function fail(res: Response): Promise<never> {
  let body: any = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  if (res.status === 401) onUnauthorized();
  throw new ApiError(res.status, body?.error?.code ?? 'http_error', body?.error?.message ?? `The service answered ${res.status}.`, body);
}

export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const init: RequestInit = { method, headers: headers(body === undefined ? {} : { 'content-type': 'application/json' }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(path, init);
  if (!res.ok) return fail(res);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

/**
 * Multipart upload, with progress (XMLHttpRequest reports bytes sent; fetch does not). Answers the per-file
 * results even when every file failed (a 4xx that carries results).
 */
export function upload(corpus: string, files: File[], onProgress?: (sent: number, total: number) => void): Promise<any> {
  const form = new FormData();
  for (const f of files) form.append('file', f, (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name);
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/corpora/${encodeURIComponent(corpus)}/documents`);
    for (const [k, v] of Object.entries(headers())) xhr.setRequestHeader(k, v);
    xhr.upload.onprogress = (e) => onProgress?.(e.loaded, e.total);
    xhr.onerror = () => reject(new ApiError(0, 'network_error', 'The upload did not reach the service.'));
    xhr.onload = () => {
      let body: any = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        /* not JSON */
      }
      if ((xhr.status >= 200 && xhr.status < 300) || (body && Array.isArray(body.results))) return resolve(body);
      if (xhr.status === 401) onUnauthorized();
      reject(new ApiError(xhr.status, body?.error?.code ?? 'http_error', body?.error?.message ?? `The service answered ${xhr.status}.`, body));
    };
    xhr.send(form);
  });
}

export async function rawBytes(documentId: number): Promise<ArrayBuffer> {
  const res = await fetch(`/documents/${documentId}?raw=true`, { headers: headers() });
  if (!res.ok) return fail(res);
  return res.arrayBuffer();
}

export async function queryCsv(sql: string): Promise<string> {
  const res = await fetch('/query', { method: 'POST', headers: headers({ 'content-type': 'application/json' }), body: JSON.stringify({ sql, format: 'csv' }) });
  if (!res.ok) return fail(res);
  return res.text();
}

/**
 * Follows a job's server-sent events. EventSource cannot send an Authorization header, so the stream is read
 * with fetch and parsed here. Returns a function that stops following.
 */
export function followJob(jobId: number, onProgress: (job: any) => void, onEnd: () => void): () => void {
  const controller = new AbortController();
  (async () => {
    const res = await fetch(`/jobs/${jobId}/events`, { headers: headers({ accept: 'text/event-stream' }), signal: controller.signal });
    if (!res.ok || !res.body) return fail(res);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let at: number;
      while ((at = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, at);
        buffer = buffer.slice(at + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data: '))
          .map((l) => l.slice(6))
          .join('\n');
        if (event === 'progress' && data) onProgress(JSON.parse(data));
      }
    }
    onEnd();
  })().catch((error) => {
    if ((error as Error).name !== 'AbortError') onEnd();
  });
  return () => controller.abort();
}
