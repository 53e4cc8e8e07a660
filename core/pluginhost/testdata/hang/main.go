// Command hang is a plugin that never completes its handshake: it sleeps.
package main

import "time"

func main() { time.Sleep(time.Hour) }
