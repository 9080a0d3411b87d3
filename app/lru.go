package app

import (
	"container/list"
	"sync"
)

// lru is a cache bounded by the sum of its entries' costs.
type lru[V any] struct {
	mu    sync.Mutex
	max   int64
	cost  int64
	ll    *list.List
	items map[string]*list.Element
}

type lruEntry[V any] struct {
	key  string
	val  V
	cost int64
}

func newLRU[V any](max int64) *lru[V] {
	return &lru[V]{max: max, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *lru[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*lruEntry[V]).val, true
	}
	var zero V
	return zero, false
}

// add inserts or replaces key, then evicts the least recently used
// entries until the total cost fits (the new entry is always kept).
func (c *lru[V]) add(key string, val V, cost int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.cost -= e.Value.(*lruEntry[V]).cost
		c.ll.Remove(e)
	}
	c.items[key] = c.ll.PushFront(&lruEntry[V]{key, val, cost})
	c.cost += cost
	for c.cost > c.max && c.ll.Len() > 1 {
		e := c.ll.Back()
		c.ll.Remove(e)
		ent := e.Value.(*lruEntry[V])
		delete(c.items, ent.key)
		c.cost -= ent.cost
	}
}

func (c *lru[V]) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.cost -= e.Value.(*lruEntry[V]).cost
		c.ll.Remove(e)
		delete(c.items, key)
	}
}

func (c *lru[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// keys returns the keys, the most recently used first.
func (c *lru[V]) keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, c.ll.Len())
	for e := c.ll.Front(); e != nil; e = e.Next() {
		keys = append(keys, e.Value.(*lruEntry[V]).key)
	}
	return keys
}
