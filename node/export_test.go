package node

// SetNoAffinity hides e's key-set shards (Engines.noAffinity), for the
// tests that compare the queue with and without them.
func SetNoAffinity(e *Engines, v bool) { e.noAffinity = v }
