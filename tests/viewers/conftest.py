"""The viewer readers' npm packages live in node_modules/ here (installed by `npm ci`): never collect it."""

collect_ignore = ["node_modules"]
