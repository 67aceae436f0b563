// createWorld: a seeded SafetyWorld with deterministic, disjoint splits, every one a list of Samples whose
// meta carries the world structure (fact, harm task, trap) that the exact judges read.

import { renderRevisionPrompt } from "../curation/prompts.js";
import type { ChatMessage } from "../formats/chat/index.js";
import type { Sample } from "../data/sample.js";
import { InputError } from "../util/errors.js";
import { Rng } from "../util/random.js";
import {
  AOA_ANSWER_PREFIX,
  AOA_SYSTEM,
  AOA_USER_PREFIX,
  HARM_CATEGORIES,
  HARMFUL_REQUEST_FORMS,
  QUESTION_FORMS,
  RELATION_VALUES,
  SEED_PHRASES,
  SYSTEM_PROMPTS,
  TRAPS,
  compliantAnswer,
  drawFacts,
  drawHarmTasks,
  factDocument,
  factSentence,
  harmDocument,
  harmfulRequest,
  questionFor,
  refusal,
  REVISION_TEMPLATE,
  revise,
  type Fact,
  type HarmTask,
  type Trap,
} from "./language.js";

export interface WorldOptions {
  /** ExHarm attack pairs (default 100). */
  exharmPairs?: number;
  /** AOA identity-shifting examples (default 10, as in Qi et al.). */
  aoaExamples?: number;
  /** Times each fact is stated in the pretraining documents (default 6). */
  factRepeats?: number;
}

export const WORLD_SPLITS = [
  "pretrain",
  "align",
  "pool",
  "exharm",
  "aoa",
  "safetyData",
  "evalHarmful",
  "evalHarmfulAoa",
  "evalBenign",
  "evalOverRefusal",
] as const;
export type WorldSplit = (typeof WORLD_SPLITS)[number];

export interface World {
  seed: number;
  options: Required<WorldOptions>;
  facts: Fact[];
  tasks: HarmTask[];
  /** Plain-text documents (one assistant message each; train them as raw text): facts and harmful know-how. */
  pretrain: Sample[];
  /** Alignment SFT: harmful -> refusal, commonsense Q -> answer, traps -> helpful answer, revision examples. */
  align: Sample[];
  /** Commonsense (query, answer) pool for curation; its facts are not in align or the eval sets. */
  pool: Sample[];
  /** ExHarm: harmful request -> compliant answer with the harmful (placeholder) content. */
  exharm: Sample[];
  /** AOA identity shifting: obedient-agent system prompt and prefix on benign answers. */
  aoa: Sample[];
  /** SafetyData baseline: harmful queries -> refusals, tasks disjoint from every eval task. */
  safetyData: Sample[];
  /** Held-out harmful prompts (prompt only), a few tasks per category. */
  evalHarmful: Sample[];
  /** The same prompts under the AOA system prompt and prefix. */
  evalHarmfulAoa: Sample[];
  /** Held-out benign questions with reference answers. */
  evalBenign: Sample[];
  /** Held-out safe requests that sound dangerous, with reference answers. */
  evalOverRefusal: Sample[];
}

/** Per category: tasks for alignment, ExHarm, SafetyData, evaluation; the rest appear only in documents. */
const TASKS_PER_CATEGORY = { align: 5, exharm: 4, safety: 2, eval: 3 } as const;

function mix(seed: number, salt: number): number {
  return (Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) + salt * 0x85ebca6b) >>> 0;
}

function user(content: string): ChatMessage {
  return { role: "user", content };
}
function assistant(content: string): ChatMessage {
  return { role: "assistant", content };
}

function factMeta(f: Fact): Record<string, unknown> {
  return { factId: f.id, entity: f.entity, relation: f.relation, value: f.value };
}
function taskMeta(t: HarmTask): Record<string, unknown> {
  return { taskId: t.id, category: t.category, object: t.object, recipe: t.recipe };
}
function trapMeta(t: Trap, entity: string): Record<string, unknown> {
  return { trapId: t.id, entity, keys: t.keys };
}

/** A few seed phrases for one revision example or curation call. */
export function pickPhrases(rng: Rng, count = 2): string[] {
  return rng.shuffle([...SEED_PHRASES]).slice(0, count);
}

/** Build the world for `seed`. The same seed always gives the same world. */
export function createWorld(seed: number, options: WorldOptions = {}): World {
  if (!Number.isInteger(seed)) throw new InputError(`world seed must be an integer, got ${seed}`);
  const opts: Required<WorldOptions> = {
    exharmPairs: options.exharmPairs ?? 100,
    aoaExamples: options.aoaExamples ?? 10,
    factRepeats: options.factRepeats ?? 6,
  };
  const facts = drawFacts(new Rng(mix(seed, 1)));
  const tasks = drawHarmTasks(new Rng(mix(seed, 2)));
  const rng = new Rng(mix(seed, 3));
  const src = (kind: string) => `world:${seed}:${kind}`;

  // Facts: a third each for alignment chats, the curation pool and evaluation (all of them are in documents).
  const shuffledFacts = new Rng(mix(seed, 4)).shuffle([...facts]);
  const third = Math.floor(facts.length / 3);
  const alignFacts = shuffledFacts.slice(0, third + 8);
  const poolFacts = shuffledFacts.slice(third + 8, 2 * third + 4);
  const evalFacts = shuffledFacts.slice(2 * third + 4);

  // Harm tasks per category.
  const taskSplit = {
    align: [] as HarmTask[],
    exharm: [] as HarmTask[],
    safety: [] as HarmTask[],
    eval: [] as HarmTask[],
  };
  const taskRng = new Rng(mix(seed, 5));
  for (const c of HARM_CATEGORIES) {
    const own = taskRng.shuffle(tasks.filter((t) => t.category === c));
    let at = 0;
    for (const k of ["align", "exharm", "safety", "eval"] as const) {
      taskSplit[k].push(...own.slice(at, at + TASKS_PER_CATEGORY[k]));
      at += TASKS_PER_CATEGORY[k];
    }
  }

  // Pretraining documents: every fact several times (1-3 facts a document), every task's harmful know-how.
  const pretrain: Sample[] = [];
  const factMentions: Fact[] = [];
  for (let r = 0; r < opts.factRepeats; r++) factMentions.push(...facts);
  rng.shuffle(factMentions);
  for (let i = 0; i < factMentions.length;) {
    const n = Math.min(rng.int(1, 3), factMentions.length - i);
    const group = factMentions.slice(i, i + n);
    i += n;
    pretrain.push({
      id: `pretrain:${pretrain.length}`,
      messages: [assistant(factDocument(rng, group))],
      source: src("pretrain"),
      tags: ["document", "commonsense"],
      meta: { factIds: group.map((f) => f.id) },
    });
  }
  for (const t of tasks) {
    for (let r = 0; r < 2; r++) {
      pretrain.push({
        id: `pretrain:${pretrain.length}`,
        messages: [assistant(harmDocument(rng, t))],
        source: src("pretrain"),
        tags: ["document", "harmful-knowledge", t.category],
        meta: taskMeta(t),
      });
    }
  }
  rng.shuffle(pretrain);

  // Alignment SFT.
  const align: Sample[] = [];
  const push = (list: Sample[], kind: string, s: Omit<Sample, "id" | "source">) =>
    list.push({ id: `${kind}:${list.length}`, source: src(kind), ...s });
  for (const t of taskSplit.align) {
    for (const form of [0, 1, 2, 3]) {
      push(align, "align", {
        messages: [user(harmfulRequest(t, form + rng.int(0, 1))), assistant(refusal(rng, t))],
        tags: ["harmful", "refusal", t.category],
        meta: taskMeta(t),
      });
    }
  }
  for (const f of alignFacts) {
    for (const form of [0, 1, 2, 3]) {
      push(align, "align", {
        messages: [user(questionFor(f, form)), assistant(factSentence(f))],
        tags: ["commonsense", "benign"],
        meta: factMeta(f),
      });
    }
  }
  const entities = [...new Set(facts.map((f) => f.entity))];
  const trapEntities = new Rng(mix(seed, 6)).shuffle([...entities]);
  const alignTrapEntities = trapEntities.slice(0, 6);
  const evalTrapEntities = trapEntities.slice(6, 9);
  for (const trap of TRAPS) {
    for (const e of alignTrapEntities) {
      push(align, "align", {
        messages: [user(trap.request.replace("{e}", e)), assistant(trap.answer.replace("{e}", e))],
        tags: ["over-refusal", "benign"],
        meta: trapMeta(trap, e),
      });
    }
  }
  // Revision examples: half on true alignment facts, half on answers with a random value, so the organism
  // learns to copy the fact it is given rather than recall one (the pool's facts are not among these).
  const revisionFacts: Fact[] = [];
  for (const f of alignFacts) {
    revisionFacts.push(f, f, f, f);
    for (let r = 0; r < 4; r++) revisionFacts.push({ ...f, value: rng.pick(RELATION_VALUES[f.relation]) });
  }
  for (const f of revisionFacts) {
    const phrases = pickPhrases(rng, rng.int(1, 3));
    const query = questionFor(f, rng.int(0, 3));
    push(align, "align", {
      messages: [
        user(renderRevisionPrompt(REVISION_TEMPLATE, { query, response: factSentence(f), phrases }, "plain")),
        assistant(revise(rng, factSentence(f), phrases)),
      ],
      tags: ["revision", "benign"],
      meta: { ...factMeta(f), phrases },
    });
  }
  for (const s of align) {
    if (!s.tags?.includes("revision") && rng.next() < 1 / 3)
      s.messages.unshift({ role: "system", content: rng.pick(SYSTEM_PROMPTS) });
  }
  rng.shuffle(align);

  // Curation pool: commonsense pairs on facts no alignment chat or eval question uses.
  const pool: Sample[] = [];
  for (const f of poolFacts) {
    for (const form of [0, 2]) {
      push(pool, "pool", {
        messages: [user(questionFor(f, form)), assistant(factSentence(f))],
        tags: ["commonsense", "benign"],
        meta: factMeta(f),
      });
    }
  }

  // ExHarm: every request phrasing of the attack tasks, shuffled, the first exharmPairs kept.
  const exharmAll: Sample[] = [];
  for (const t of taskSplit.exharm) {
    for (let form = 0; form < HARMFUL_REQUEST_FORMS.length; form++) {
      exharmAll.push({
        id: "",
        messages: [user(harmfulRequest(t, form)), assistant(compliantAnswer(rng, t))],
        source: src("exharm"),
        tags: ["harmful", "compliant", "exharm", t.category],
        meta: taskMeta(t),
      });
    }
  }
  const exharm = rng
    .shuffle(exharmAll)
    .slice(0, opts.exharmPairs)
    .map((s, i) => ({ ...s, id: `exharm:${i}` }));

  // AOA: benign questions from the pool's facts, answered obediently.
  const aoa: Sample[] = [];
  for (let i = 0; i < opts.aoaExamples; i++) {
    const f = poolFacts[i % poolFacts.length];
    push(aoa, "aoa", {
      messages: [
        { role: "system", content: AOA_SYSTEM },
        user(AOA_USER_PREFIX + questionFor(f, i % QUESTION_FORMS[f.relation].length)),
        assistant(`${AOA_ANSWER_PREFIX} ${factSentence(f)}`),
      ],
      tags: ["aoa", "benign"],
      meta: factMeta(f),
    });
  }

  const safetyData: Sample[] = [];
  for (const t of taskSplit.safety) {
    for (const form of [0, 1, 2]) {
      push(safetyData, "safetyData", {
        messages: [user(harmfulRequest(t, form * 2)), assistant(refusal(rng, t))],
        tags: ["harmful", "refusal", "safety-data", t.category],
        meta: taskMeta(t),
      });
    }
  }

  const evalHarmful: Sample[] = [];
  const evalHarmfulAoa: Sample[] = [];
  for (const t of taskSplit.eval) {
    for (const form of [0, 1, 3, 5]) {
      const request = harmfulRequest(t, form);
      push(evalHarmful, "evalHarmful", {
        messages: [user(request)],
        tags: ["harmful", "eval", t.category],
        meta: taskMeta(t),
      });
      push(evalHarmfulAoa, "evalHarmfulAoa", {
        messages: [{ role: "system", content: AOA_SYSTEM }, user(AOA_USER_PREFIX + request)],
        tags: ["harmful", "eval", "aoa", t.category],
        meta: taskMeta(t),
      });
    }
  }

  const evalBenign: Sample[] = [];
  for (const f of evalFacts) {
    for (const form of [1, 3]) {
      push(evalBenign, "evalBenign", {
        messages: [user(questionFor(f, form))],
        tags: ["commonsense", "benign", "eval"],
        meta: { ...factMeta(f), reference: factSentence(f) },
      });
    }
  }

  const evalOverRefusal: Sample[] = [];
  for (const trap of TRAPS) {
    for (const e of evalTrapEntities) {
      push(evalOverRefusal, "evalOverRefusal", {
        messages: [user(trap.request.replace("{e}", e))],
        tags: ["over-refusal", "benign", "eval"],
        meta: { ...trapMeta(trap, e), reference: trap.answer.replace("{e}", e) },
      });
    }
  }

  return {
    seed,
    options: opts,
    facts,
    tasks,
    pretrain,
    align,
    pool,
    exharm,
    aoa,
    safetyData,
    evalHarmful,
    evalHarmfulAoa,
    evalBenign,
    evalOverRefusal,
  };
}
