// Checkpoints: placeholder until its first file lands.
