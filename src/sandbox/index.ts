export { createSandbox, type SandboxSettings } from './sandbox.js';
export { EXTRACTION_FUNCTION_CONTRACT, type DocHelpers, type DocNode, type ExtractResult } from './contract.js';
export type * from './types.js';
