// Piscina entry for the parse pool: loads the TypeScript task through tsx (a worker thread does not inherit
// the loader of the process that started it, and under a test runner there is none).
import { tsImport } from 'tsx/esm/api';

const task = await tsImport('./parse-task.ts', import.meta.url);
export default task.default;
