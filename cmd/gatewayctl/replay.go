package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/gatewayd-access/gatewayd/core/recording"
)

// replay plays a session's recording in the terminal with its timing.
func (a *app) replay(ctx context.Context, args []string) error {
	c := a.command("replay", "replay SESSION | --file FILE [--speed X] [--idle-limit D]")
	c.gatewayFlags()
	file := c.String("file", "", "play the asciicast `FILE` instead of fetching a session's recording")
	speed := c.Float64("speed", 1, "play `X` times as fast")
	idle := c.Duration("idle-limit", 0, "shorten every pause to at most `D` (e.g. 2s); 0 keeps them")
	pos, err := c.parse(args)
	if err != nil {
		return err
	}
	if *speed <= 0 {
		return usagef("replay: --speed must be positive")
	}
	if *idle < 0 {
		return usagef("replay: --idle-limit must not be negative")
	}
	var src io.Reader
	switch {
	case *file != "" && len(pos) == 0:
		f, err := os.Open(*file)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		defer f.Close()
		src = f
	case *file == "" && len(pos) == 1:
		cl, err := a.client()
		if err != nil {
			return err
		}
		resp, err := cl.get(ctx, "/v1/sessions/"+url.PathEscape(pos[0])+"/recording", nil)
		if err != nil {
			return fmt.Errorf("fetching the recording of session %s: %w", pos[0], err)
		}
		defer resp.Body.Close()
		src = resp.Body
	default:
		return usagef("replay: give a session id or --file FILE")
	}
	err = recording.Play(ctx, a.stdout, src, recording.PlayOptions{Speed: *speed, IdleLimit: *idle})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("replay: %w", err)
	}
	return nil
}
