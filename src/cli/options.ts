// Flag parsers shared by the commands: numbers are checked where they are parsed, so errors name the flag.

import { InvalidArgumentError } from "commander";

export function intOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`expected an integer, got "${value}"`);
  return n;
}

/** An integer of at least 1 (counts: steps, threads). */
export function positiveIntOption(value: string): number {
  const n = intOption(value);
  if (n < 1) throw new InvalidArgumentError(`expected an integer of at least 1, got "${value}"`);
  return n;
}

export function numberOption(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got "${value}"`);
  return n;
}

/** A comma-separated list of numbers ("1e-4,5e-4"). */
export function numberListOption(value: string): number[] {
  const items = value.split(",").map((v) => v.trim());
  return items.map((v) => {
    const n = Number(v);
    if (v === "" || !Number.isFinite(n))
      throw new InvalidArgumentError(`expected comma-separated numbers, got "${value}"`);
    return n;
  });
}
