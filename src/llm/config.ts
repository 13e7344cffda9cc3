/**
 * Which endpoint and which model per role, from the environment. Missing configuration is reported,
 * never thrown at start: the service runs without a model, and only a call that needs one fails.
 */
import { EvaporateError } from '../errors.js';
import type { ModelRole } from './types.js';

export interface LlmConfig {
  baseURL: string | undefined;
  apiKey: string | undefined;
  models: Record<ModelRole, string | undefined>;
  /** Per role: the environment variables to set before that role can be served (empty = ready). */
  missing: Record<ModelRole, string[]>;
}

const ROLE_VARS: Record<ModelRole, string> = {
  synthesis: 'EVAPORATE_MODEL_SYNTHESIS',
  extraction: 'EVAPORATE_MODEL_EXTRACTION',
  schema: 'EVAPORATE_MODEL_SCHEMA',
};

export const MODEL_ROLES: ModelRole[] = ['synthesis', 'extraction', 'schema'];

export function llmConfigFromEnv(env: NodeJS.ProcessEnv = process.env): LlmConfig {
  const get = (name: string) => (env[name] && env[name]!.trim() !== '' ? env[name]!.trim() : undefined);
  const baseURL = get('OPENAI_BASE_URL');
  const apiKey = get('OPENAI_API_KEY');
  const fallbackModel = get('EVAPORATE_MODEL');
  const models = {} as Record<ModelRole, string | undefined>;
  const missing = {} as Record<ModelRole, string[]>;
  for (const role of MODEL_ROLES) {
    models[role] = get(ROLE_VARS[role]) ?? fallbackModel;
    const vars: string[] = [];
    if (!models[role]) vars.push(`${ROLE_VARS[role]} or EVAPORATE_MODEL`);
    // OpenAI itself needs a key; a local endpoint (vLLM, llama.cpp, Ollama) accepts any.
    if (!baseURL && !apiKey) vars.push('OPENAI_API_KEY (or OPENAI_BASE_URL for a local endpoint)');
    missing[role] = vars;
  }
  return { baseURL, apiKey, models, missing };
}

export function isConfigured(config: LlmConfig, role: ModelRole): boolean {
  return config.missing[role].length === 0;
}

export function notConfiguredError(role: ModelRole | undefined, vars: string[], hint = ''): EvaporateError {
  const what = role ? `the "${role}" model` : 'a language model';
  return new EvaporateError(
    'llm_not_configured',
    `This needs ${what}, but none is configured. Set ${vars.join(' and ')} and restart the service${hint ? `, ${hint}` : ''}.`,
    503,
    { role: role ?? null, variables: vars },
  );
}

/** Human-readable summary for startup logs and /health: which roles work and what is missing. */
export function describeLlmConfig(config: LlmConfig): string {
  return MODEL_ROLES.map((role) =>
    isConfigured(config, role)
      ? `${role}: ${config.models[role]} @ ${config.baseURL ?? 'https://api.openai.com/v1'}`
      : `${role}: not configured (set ${config.missing[role].join(', ')})`,
  ).join('; ');
}
