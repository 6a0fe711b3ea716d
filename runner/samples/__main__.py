"""`python -m runner.samples`: build the sample bundles (what .ci/setup runs)."""

from runner.samples.build import main

raise SystemExit(main())
