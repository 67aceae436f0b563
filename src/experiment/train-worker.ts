// Runs one training job of the experiment on a worker thread, so that two jobs (each on one engine thread) use
// both cores of a laptop at once. The main thread sends the job, the worker sends progress and the outcome.

import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import type { Sample } from "../data/sample.js";
import type { ModelHandle, TrainRecipe } from "../stages/index.js";
import { BuckleError } from "../util/errors.js";

export interface TrainJob {
  base: ModelHandle;
  samples: Sample[];
  recipe: TrainRecipe;
  outDir: string;
  stage: string;
  threads: number;
}

export interface TrainJobResult {
  handle: ModelHandle;
  completed: boolean;
  history: { step: number; loss: number }[];
}

type Message =
  | { type: "progress"; step: number; totalSteps: number }
  | { type: "done"; result: TrainJobResult }
  | { type: "error"; message: string; hint?: string };

/** Train `job` on a worker thread; abort terminates the worker (a rerun resumes from its checkpoint). */
export function trainInWorker(
  job: TrainJob,
  onProgress: (fraction: number) => void,
  signal?: AbortSignal,
): Promise<TrainJobResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: job });
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      fn();
    };
    const onAbort = () => {
      void worker.terminate();
      finish(() => reject(new BuckleError(`training in ${job.outDir} was cancelled`)));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    worker.on("message", (m: Message) => {
      if (m.type === "progress") onProgress(m.step / Math.max(1, m.totalSteps));
      else if (m.type === "done") finish(() => resolve(m.result));
      else finish(() => reject(new BuckleError(m.message, { hint: m.hint })));
    });
    worker.on("error", (err) => finish(() => reject(err)));
    worker.on("exit", (code) =>
      finish(() => reject(new BuckleError(`the training worker for ${job.outDir} exited (code ${code})`))),
    );
  });
}

async function workerMain(job: TrainJob): Promise<void> {
  const { ensureFastKernels } = await import("../engine/index.js");
  const { nativeTrainer } = await import("../stages/index.js");
  await ensureFastKernels(job.threads);
  let last = 0;
  const outcome = await nativeTrainer.train(job.base, job.samples, job.recipe, {
    outDir: job.outDir,
    resume: true,
    stage: job.stage,
    threads: job.threads,
    log: () => {},
    onProgress: (p) => {
      const now = Date.now();
      if (now - last > 500 || p.step === p.totalSteps) {
        last = now;
        parentPort!.postMessage({
          type: "progress",
          step: p.step,
          totalSteps: p.totalSteps,
        } satisfies Message);
      }
    },
  });
  const result: TrainJobResult = {
    handle: outcome.handle,
    completed: outcome.completed,
    history: outcome.record.history.map((h) => ({ step: h.step, loss: h.loss })),
  };
  parentPort!.postMessage({ type: "done", result } satisfies Message);
}

if (!isMainThread && parentPort && (workerData as TrainJob | undefined)?.outDir) {
  workerMain(workerData as TrainJob).catch((err: unknown) => {
    const e = err as { message?: string; hint?: string };
    parentPort!.postMessage({
      type: "error",
      message: e?.message ?? String(err),
      hint: e?.hint,
    } satisfies Message);
  });
}
