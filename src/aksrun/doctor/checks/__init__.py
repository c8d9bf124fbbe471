"""Doctor's checks, one module per thing checked. Each function takes the shared `Context`
and returns an `Outcome`: a one-line summary, and when it fails the fix in one sentence."""
