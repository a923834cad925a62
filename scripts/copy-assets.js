// Puts what Node-RED's loader looks for next to the compiled nodes: each
// node's .html and locales/, the icons/ folder, and the example flows under
// examples/ (the only folder the Import → Examples menu reads).
"use strict";
const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..");
const copy = (from, to) => fs.cpSync(from, to, { recursive: true });

for (const name of fs.readdirSync(path.join(root, "nodes"))) {
  const source = path.join(root, "nodes", name);
  const target = path.join(root, "dist", "nodes", name);
  const html = path.join(source, `${name}.html`);
  if (!fs.existsSync(html)) continue; // shared code has no editor file
  copy(html, path.join(target, `${name}.html`));
  copy(path.join(source, "locales"), path.join(target, "locales"));
  copy(path.join(root, "icons"), path.join(target, "icons"));
}

const examples = path.join(root, "examples");
fs.rmSync(examples, { recursive: true, force: true });
fs.mkdirSync(examples);
for (const file of fs.readdirSync(path.join(root, "flows")).filter((f) => f.endsWith(".json"))) {
  copy(path.join(root, "flows", file), path.join(examples, file));
}
