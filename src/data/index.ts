// The data room's public surface: the Sample record, dataset readers and writers, CSV, selection and
// overlap checks. Other rooms import from here only.

export * from "./sample.js";
export * from "./csv.js";
export * from "./sft.js";
export * from "./datasets.js";
export * from "./select.js";
export * from "./overlap.js";
