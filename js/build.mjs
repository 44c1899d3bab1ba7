// Bundle the widgets' front end: js/src/<entry> -> src/promptstate/widgets/static/<entry>.
//
//   node js/build.mjs           build once (npm run build; the hatch build hook runs this)
//   node js/build.mjs --watch   rebuild on every change (npm run watch; with
//                               ANYWIDGET_HMR=1 the open widgets reload the new files)
//
// Each JS entry becomes one self-contained ES module (anywidget loads a module from a
// single string, so nothing may be left to import at run time); each CSS entry is
// bundled with the theme it @imports.

import { mkdir, readFile, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SRC = path.join(ROOT, "js", "src");
export const OUTDIR = path.join(ROOT, "src", "promptstate", "widgets", "static");
export const ENTRIES = ["widget.js", "devtools.js", "history.js", "sweep.js", "widget.css", "panels.css"];

const BANNER = "promptstate widget front end, built by js/build.mjs from js/src/: do not edit";

// esbuild ends an ES module with `export { x as default };`. Written out as the plain
// `export default x;` anywidget's docs show, which is also what the kernel-side tests
// look for in the module a widget serves. Same module either way.
const DEFAULT_EXPORT = /\nexport \{\n {2}([A-Za-z_$][\w$]*) as default\n\};\n$/;

/**
 * @param {string} file  output path
 * @param {string} text  its contents from esbuild
 * @returns {string}
 */
function finish(file, text) {
  if (!file.endsWith(".js")) return text;
  const m = DEFAULT_EXPORT.exec(text);
  if (!m) {
    throw new Error(`${path.relative(ROOT, file)}: expected the entry's only export to be its default export`);
  }
  return text.slice(0, m.index) + `\nexport default ${m[1]};\n`;
}

/** Write the outputs, leaving unchanged files untouched (no spurious hot reloads). */
const writeOutputs = {
  name: "promptstate-write",
  /** @param {import("esbuild").PluginBuild} build */
  setup(build) {
    build.onEnd(async (result) => {
      if (result.errors.length || !result.outputFiles) return;
      await mkdir(OUTDIR, { recursive: true });
      const changed = [];
      for (const out of result.outputFiles) {
        const text = finish(out.path, out.text);
        const old = await readFile(out.path, "utf8").catch(() => null);
        if (old === text) continue;
        // In place, not via rename: anywidget's file watcher follows the file's inode.
        await writeFile(out.path, text);
        changed.push(path.relative(ROOT, out.path));
      }
      // The folder's time marks the last build (promptstate.widgets._assets warns when a
      // source is newer); the files' own times only change with their contents.
      const now = new Date();
      await utimes(OUTDIR, now, now);
      console.log(changed.length ? `built ${changed.join(", ")}` : "bundles up to date");
    });
  },
};

/** @type {import("esbuild").BuildOptions} */
const options = {
  entryPoints: ENTRIES.map((name) => path.join(SRC, name)),
  outdir: OUTDIR,
  outbase: SRC,
  bundle: true,
  format: "esm",
  target: "es2020",
  // Unminified: the bundles are small (tens of kB) and readable in the browser's devtools.
  minify: false,
  charset: "utf8",
  legalComments: "none",
  banner: { js: `// ${BANNER}`, css: `/* ${BANNER} */` },
  logLevel: "warning",
  write: false,
  plugins: [writeOutputs],
};

if (process.argv.includes("--watch")) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
  console.log(`watching js/src/ -> ${path.relative(ROOT, OUTDIR)}/ (Ctrl+C to stop)`);
} else {
  await esbuild.build(options);
}
