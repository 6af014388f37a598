"""The shared leaves of orchestration/: errors a user can fix (and reading YAML so a typo says where) and the signal
handling of a run. Every sub-package may import them; they import no other part of orchestration/."""
