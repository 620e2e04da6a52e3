export * from './schema.js';
export * from './load.js';
export { renderConfigDocs } from './docs.js';
