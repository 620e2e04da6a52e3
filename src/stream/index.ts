export {
  StreamChecker,
  type StreamCheckOptions,
  type AnomalyRule,
  type RangeLookup,
} from './checks.js';
