package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestReviewErrors(t *testing.T) {
	_, err := Load(filepath.Join("testdata", "review.toml"))
	if err == nil {
		t.Fatal("Load succeeded")
	}
	for _, want := range []string{
		`testdata/review.toml:12: connection[1] ("app-db"): key "min_approvals": must be at least 1, have 0`,
		`connection[1] ("app-db"): key "reviewers": required with require_approval = true`,
		`testdata/review.toml:15: key "review.hold_timeout": must be positive`,
		`testdata/review.toml:18: review.webhook[1]: key "url": want an http or https URL`,
		`testdata/review.toml:19: review.webhook[1]: key "format": want one of json, slack, have "teams"`,
		`testdata/review.toml:20: review.webhook[1]: key "secret": `,
		`review.webhook[2]: key "url_secret": give url or url_secret, not both`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
}
