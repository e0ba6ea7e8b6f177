package consumer

import "testing"

func TestTrackerCommittable(t *testing.T) {
	tests := []struct {
		name     string
		fetched  []int64
		finished []int64
		want     int64
	}{
		{name: "nothing fetched", want: -1},
		{name: "none finished", fetched: []int64{5, 6, 7}, want: 5},
		{name: "all finished", fetched: []int64{5, 6, 7}, finished: []int64{7, 5, 6}, want: 8},
		{name: "gap in the middle", fetched: []int64{5, 6, 7}, finished: []int64{5, 7}, want: 6},
		{name: "head unfinished", fetched: []int64{5, 6, 7}, finished: []int64{6, 7}, want: 5},
		{name: "offsets with holes (compaction)", fetched: []int64{10, 20, 30}, finished: []int64{10, 20}, want: 30},
		{name: "unknown offset ignored", fetched: []int64{1, 2}, finished: []int64{9, 1}, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker()
			for _, o := range tt.fetched {
				tr.fetched(o)
			}
			for _, o := range tt.finished {
				tr.finish(o)
			}
			if got := tr.committable(); got != tt.want {
				t.Errorf("committable() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestTrackerDropAndFetchAgain(t *testing.T) {
	tests := []struct {
		name      string
		fetched   []int64
		dropped   []int64
		finished  []int64
		refetched []int64 // fetched again after the drops, in order
		wantTake  []bool  // what fetched reports for each refetched offset
		want      int64
	}{
		{name: "dropped head holds the commit", fetched: []int64{5, 6, 7}, dropped: []int64{5}, finished: []int64{6, 7}, want: 5},
		{name: "refetch takes only what was dropped", fetched: []int64{5, 6, 7, 8}, dropped: []int64{5, 7}, finished: []int64{6},
			refetched: []int64{5, 6, 7, 8, 9}, wantTake: []bool{true, false, true, false, true}, want: 5},
		{name: "finished after refetch", fetched: []int64{5, 6}, dropped: []int64{5, 6}, refetched: []int64{5, 6},
			wantTake: []bool{true, true}, finished: nil, want: 5},
		{name: "drop of a finished offset is ignored", fetched: []int64{1, 2}, finished: []int64{1, 2}, dropped: []int64{1}, want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker()
			for _, o := range tt.fetched {
				tr.fetched(o)
			}
			for _, o := range tt.finished {
				tr.finish(o)
			}
			for _, o := range tt.dropped {
				tr.drop(o)
			}
			for i, o := range tt.refetched {
				if got := tr.fetched(o); got != tt.wantTake[i] {
					t.Errorf("fetched(%d) again = %v, want %v", o, got, tt.wantTake[i])
				}
			}
			if got := tr.committable(); got != tt.want {
				t.Errorf("committable() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestTrackerCompacts(t *testing.T) {
	tr := newTracker()
	for o := int64(0); o < 10000; o++ {
		tr.fetched(o)
		tr.finish(o)
	}
	if got, want := tr.committable(), int64(10000); got != want {
		t.Fatalf("committable() = %d, want %d", got, want)
	}
	if n := len(tr.pending); n > 200 {
		t.Fatalf("pending holds %d entries after everything finished, want it compacted", n)
	}
}
