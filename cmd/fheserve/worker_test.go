package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fheserve/fheserve"
)

func TestWorkerFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    workerOptions
		wantErr string
	}{
		{name: "flags", args: []string{"--store", "postgres://db/f", "--queue", "nats://n:4222", "--blobs", "nats://n:4222", "--workers", "2", "--max-attempts", "4", "--metrics-addr", "127.0.0.1:9090"},
			want: workerOptions{DataDir: "fheserve-data", Store: "postgres://db/f", Queue: "nats://n:4222", Blobs: "nats://n:4222", Workers: 2, MaxAttempts: 4, ResultTTL: 24 * time.Hour, MetricsAddr: "127.0.0.1:9090"}},
		{name: "environment", env: map[string]string{storeEnv: "postgres://db/f", queueEnv: "nats://n:4222", blobsEnv: "nats://b:4222"},
			want: workerOptions{DataDir: "fheserve-data", Store: "postgres://db/f", Queue: "nats://n:4222", Blobs: "nats://b:4222", ResultTTL: 24 * time.Hour}},
		{name: "no queue", args: []string{"--store", "postgres://db/f"}, wantErr: fheserve.EINVALID},
		{name: "no store", args: []string{"--queue", "nats://n:4222"}, wantErr: fheserve.EINVALID},
		{name: "unknown queue", args: []string{"--store", "postgres://db/f", "--queue", "redis://q"}, wantErr: fheserve.EINVALID},
		{name: "negative workers", args: []string{"--store", "postgres://db/f", "--queue", "nats://n:4222", "--workers", "-1"}, wantErr: fheserve.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := testFactory(t)
			f.Getenv = func(k string) string { return tt.env[k] }
			var got *workerOptions
			err := execute(t, newWorkerCmd(f, func(o *workerOptions) error { got = o; return nil }), tt.args...)
			checkParse(t, err, tt.wantErr)
			if tt.wantErr == "" {
				if diff := cmp.Diff(tt.want, *got, injected); diff != "" {
					t.Errorf("options (-want +got):\n%s", diff)
				}
			}
		})
	}
}
