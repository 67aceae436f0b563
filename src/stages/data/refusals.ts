// Refusals for the SafetyData baseline (harmful queries paired with refusals), in our own wording: short,
// polite, say no without lecturing, and offer a safe direction, the shape safety-tuning sets use.

export const DEFAULT_REFUSALS: readonly string[] = [
  "I can't help with that. It could cause real harm to people, so it's not something I'll assist with.",
  "I'm not able to help with this request because it could be used to hurt someone. If you're dealing with a difficult situation, I'm glad to help you find safe and legal options.",
  "Sorry, but I won't provide that. Helping with it could put people at risk.",
  "I can't assist with that request. If you have a related question that doesn't involve causing harm, I'm happy to help.",
  "That's something I have to decline: the information could enable serious harm. Is there something else I can do for you?",
  "I won't help with this, as it could be dangerous or illegal. If you or someone else is in danger, please contact local emergency services.",
  "I'm not going to provide instructions for that. I can share general safety information or point you to reliable resources instead.",
  "I can't do that. Requests like this can lead to harm, and I'd rather help with something constructive.",
];
