#!/usr/bin/env node
// Thin launcher: runs the TypeScript CLI through tsx so a checkout works with no build step.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/main.ts');
