// The report room's public surface: the report document's schema, its renderers and the writer.
// The experiment runner builds a ReportData and calls writeReport; `buckle report` re-renders a saved one.

export {
  ReportDataSchema,
  MetricsSchema,
  METRIC_INFO,
  METRIC_KEYS,
  TEXT_KINDS,
  PPL_MODELS,
  parseReportData,
  formatIssuePath,
  type ReportData,
  type Cell,
  type Metric,
  type Metrics,
  type MetricKey,
  type ExampleAnswer,
  type CuratedSampleReport,
} from "./data.js";
export { renderMarkdown } from "./markdown.js";
export { renderHtml } from "./html.js";
export { writeReport, type WrittenReport } from "./write.js";
export { wordDiff, type DiffPart } from "./diff.js";
export { DEFENCE_ORDER, orderedDefences } from "./format.js";
export { findChromium } from "./browser.js";
