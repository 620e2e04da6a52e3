/**
 * The metadata store: one database (a DuckDB file of its own, or a
 * PostgreSQL schema) holding alerts and their outbox, and workflow run
 * history. One process opens it once and hands it to both.
 */
import type { AlertStore } from './alerts.js';
import type { WorkflowStore } from './workflows.js';

export interface MetaStore extends AlertStore, WorkflowStore {}
