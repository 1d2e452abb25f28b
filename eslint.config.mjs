// ESLint's configuration: the JavaScript of the tools' pages (.ci/run runs
// `npx eslint`). Each file is a classic script, inlined into a page that
// opens from file://, in a current browser.
import js from "@eslint/js";
import globals from "globals";

export default [
  {
    ignores: ["node_modules/", ".venv/"],
  },
  js.configs.recommended,
  {
    files: ["tools/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "script",
      globals: globals.browser,
    },
    rules: {
      "eqeqeq": "error",
      "no-var": "error",
      "prefer-const": "error",
      "no-shadow": "error",
      "no-unused-vars": ["error", {args: "all"}],
      "strict": ["error", "global"],
      "curly": ["error", "multi-line"],
    },
  },
];
