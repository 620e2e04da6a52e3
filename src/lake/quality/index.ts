export {
  EXPECTATION_NAMES,
  IDENTIFIER,
  expectationSchema,
  loadSuiteFile,
  parseSuite,
  suiteSchema,
  validateSuite,
  type Expectation,
  type ExpectationName,
  type Suite,
  type SuiteInput,
} from './suite.js';
export {
  quoteIdent,
  quoteTable,
  runExpectation,
  runSuite,
  type ExpectationResult,
  type ObservedValue,
  type RunSuiteOptions,
  type SuiteResult,
} from './run.js';
export {
  BRONZE_READINGS_SUITE,
  SILVER_READINGS_SUITE,
  bronzeReadingsSuite,
  bronzeReadingsSuiteInput,
  builtinSuiteYaml,
  builtinSuites,
  silverReadingsSuite,
  silverReadingsSuiteInput,
  type BuiltinSuiteOptions,
} from './builtin.js';
