/**
 * The metadata store: one database (a DuckDB file of its own, or a
 * PostgreSQL schema) holding alerts and their outbox, workflow run history,
 * and credentials (API keys, users, sessions, MQTT devices). One process
 * opens it once and hands it to each.
 */
import type { AlertStore } from './alerts.js';
import type { AuthStore } from './auth.js';
import type { WorkflowStore } from './workflows.js';

export interface MetaStore extends AlertStore, WorkflowStore, AuthStore {}
