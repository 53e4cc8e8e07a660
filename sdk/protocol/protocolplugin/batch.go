package protocolplugin

import (
	"sync"
	"time"
)

const (
	// maxPending bounds the frames waiting for the stream; beyond it,
	// senders wait (backpressure).
	maxPending = 4096
	// linger bounds how long a lazy frame waits for company.
	linger = 2 * time.Millisecond
)

// batcher sends frames on a stream, many per message: what a message costs
// (a write, a read and wakeups in both processes) does not depend much on
// its size. One goroutine sends; callers add their frames and go on. While
// it sends, frames pile up and go together in the next message, so under
// load the calls of many sessions share messages.
//
// A lazy frame (a call nobody waits for) does not wake the sender: it goes
// with the next frame that does, or after linger.
type batcher[F any] struct {
	send func([]F) error
	kick chan struct{} // wakes the sender; capacity 1

	mu      sync.Mutex
	cond    sync.Cond // signalled when pending shrinks or the batcher fails
	pending []F
	held    bool        // collecting only, until release
	timer   *time.Timer // armed while only lazy frames wait
	err     error       // why the batcher ended
}

// newBatcher starts a batcher that sends with send until close or a send
// error. A held batcher only collects frames until release: for a stream
// that is not open yet.
func newBatcher[F any](send func([]F) error, held bool) *batcher[F] {
	b := &batcher[F]{send: send, kick: make(chan struct{}, 1), held: held}
	b.cond.L = &b.mu
	go b.run()
	return b
}

// release starts sending what a held batcher collected.
func (b *batcher[F]) release() {
	b.mu.Lock()
	b.held = false
	b.mu.Unlock()
	b.wake()
}

// push adds f, for the sender to send at once unless lazy. It returns the
// error that ended the batcher, if it has ended.
func (b *batcher[F]) push(f F, lazy bool) error {
	b.mu.Lock()
	for len(b.pending) >= maxPending && b.err == nil {
		b.cond.Wait()
	}
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return err
	}
	b.pending = append(b.pending, f)
	if lazy {
		if b.timer == nil {
			b.timer = time.AfterFunc(linger, b.wake)
		}
		b.mu.Unlock()
		return nil
	}
	b.mu.Unlock()
	b.wake()
	return nil
}

func (b *batcher[F]) wake() {
	select {
	case b.kick <- struct{}{}:
	default: // already woken
	}
}

func (b *batcher[F]) run() {
	var batch []F
	for range b.kick {
		for {
			b.mu.Lock()
			if b.err != nil {
				b.mu.Unlock()
				return
			}
			if b.held || len(b.pending) == 0 {
				b.mu.Unlock()
				break
			}
			if b.timer != nil {
				b.timer.Stop()
				b.timer = nil
			}
			batch, b.pending = b.pending, batch[:0]
			b.cond.Broadcast()
			b.mu.Unlock()
			err := b.send(batch)
			clear(batch) // let the frames go
			if err != nil {
				b.close(err)
				return
			}
		}
	}
}

// close ends the batcher: every push from now on returns err, and what
// is pending is dropped.
func (b *batcher[F]) close(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return
	}
	b.err = err
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	clear(b.pending)
	b.pending = nil
	b.cond.Broadcast()
	b.wake() // the sender returns
}
