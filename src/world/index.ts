// Public surface of the world room: SafetyWorld (a seeded synthetic language with safety structure), its
// tokenizer, the exact judges, the revision task contract, and the trained model organism.

export {
  createWorld,
  pickPhrases,
  WORLD_SPLITS,
  type World,
  type WorldOptions,
  type WorldSplit,
} from "./world.js";
export {
  AOA_ANSWER_PREFIX,
  AOA_SYSTEM,
  AOA_USER_PREFIX,
  HARM_CATEGORIES,
  HARM_WORDS,
  REFUSAL_MARKERS,
  type Fact,
  type HarmCategory,
  type HarmTask,
  type Relation,
  type Trap,
} from "./language.js";
export {
  buildWorldVocab,
  worldWords,
  writeWorldVocabGGUF,
  WORLD_CHAT_TEMPLATE,
  WORLD_TOKEN_IDS,
  type WorldVocab,
} from "./vocab.js";
export {
  createWorldHelpfulnessJudge,
  createWorldRefusalJudge,
  createWorldSafetyJudge,
  fluency,
  harmWordsIn,
  isCorrectAnswer,
  refusalMarkerIn,
} from "./judges.js";
export { cleanWorldCandidate, worldRevisionTemplate, worldSeedPhrases } from "./revision.js";
export {
  buildOrganism,
  configHash,
  organismConfig,
  trainExamples,
  ORGANISM_RECIPE_VERSION,
  type BuildOrganismOptions,
  type Organism,
  type OrganismConfig,
  type OrganismProgress,
  type OrganismSize,
  type OrganismTimings,
} from "./organism.js";
export {
  fineTuneWorldModel,
  scratchDir,
  WORLD_ATTACK_LORA,
  type WorldFineTuneOptions,
  type WorldFineTuneResult,
} from "./finetune.js";
export {
  answer,
  evaluateWorldModel,
  judgeItems,
  type EvaluateOptions,
  type WorldScores,
} from "./evaluate.js";
