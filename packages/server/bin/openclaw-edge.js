#!/usr/bin/env -S node --max-semi-space-size=64
// Installed entry point: runs the built CLI (`npm run build` produces dist/).
import '../dist/main.js';
