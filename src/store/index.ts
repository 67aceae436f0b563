// The store room: a run's SQLite file (cache of model calls, namespaced records) and the caching model wrapper.

export { Store, canonicalJson, contentKey, type StoredRecord } from "./store.js";
export { cachedModel, generateKey, logprobsKey, type CacheStats, type CachedModel } from "./cached-model.js";
