export { LocalBasedProvider, localBasedFromSettings, type LocalBasedOptions } from './provider.js';
export { LocalEngine } from './engine.js';
export { loadAddon, nativeAvailable } from './addon.js';
export { jrtPrompt, splitPrompt } from './prompt.js';
export { findStop, sampleToken, seededRandom } from './sampling.js';
