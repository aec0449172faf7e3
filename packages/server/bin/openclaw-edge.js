#!/usr/bin/env node
// Installed entry point: runs the built CLI (`npm run build` produces dist/).
import '../dist/main.js';
