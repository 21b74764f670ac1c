// Engine: placeholder until its first file lands.
