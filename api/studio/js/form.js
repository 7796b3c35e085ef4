// Render settings built from the spec's JSON schema as the server publishes it
// (GET /v1/spec/schema): a field the server adds appears here without a change to the page.
// The form only keeps the fields the user set; the server fills in the rest and is the
// only judge of what is valid (its messages are shown next to the field they name).

import { h } from "./dom.js";

// Nicer words for some fields; any other field is labelled with its schema title.
const LABELS = {
  c: "c",
  fps: "Frames per second",
  max_iter: "Max iterations",
  supersample: "Supersampling",
  colormap: "Colours",
  center: "View centre",
  scale: "View half-height",
  duration: "Duration (s)",
  step: "Step (radians / frame)",
  points: "Points",
};

let uniqueId = 0;

function clone(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

// A field's label: its name in words (schema titles of shared types name the type).
function labelOf(name) {
  if (LABELS[name]) return LABELS[name];
  const words = String(name).replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function number(value) {
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(4)));
}

function rangeText(node) {
  const parts = [];
  if (node.minimum !== undefined && node.maximum !== undefined) {
    parts.push(`${number(node.minimum)} to ${number(node.maximum)}`);
  } else if (node.minimum !== undefined) {
    parts.push(`at least ${number(node.minimum)}`);
  } else if (node.maximum !== undefined) {
    parts.push(`at most ${number(node.maximum)}`);
  }
  if (node.multipleOf === 2) parts.push("even");
  return parts.join(", ");
}

export class SpecForm {
  constructor(schema, { onChange = () => {} } = {}) {
    this.schema = schema;
    this.defs = schema.$defs || {};
    this.values = {};
    this.onChange = onChange;
    this.bindings = []; // { path: string, refresh(), slot }
    this.exclusive = [["frames", "duration"]];
  }

  // -- schema ---------------------------------------------------------------------------

  resolve(node) {
    let current = node || {};
    while (current.$ref) {
      const name = current.$ref.split("/").pop();
      const { $ref, ...rest } = current;
      current = { ...this.defs[name], ...rest };
    }
    if (current.allOf && current.allOf.length === 1) {
      const { allOf, ...rest } = current;
      current = { ...this.resolve(allOf[0]), ...rest };
    }
    return current;
  }

  // What kind of control a schema node needs, with the node it describes.
  shape(node) {
    node = this.resolve(node);
    const alternatives = node.oneOf || node.anyOf;
    if (alternatives) {
      const options = alternatives.map((option) => this.resolve(option));
      const present = options.filter((option) => option.type !== "null");
      const nullable = present.length < options.length;
      if (node.discriminator || present.every((o) => o.type === "object" && o.properties)) {
        return { kind: "variants", node, options: present, nullable };
      }
      if (present.length === 1) {
        const inner = this.shape({ ...present[0], default: node.default, title: node.title });
        return { ...inner, nullable: true };
      }
      const types = present.map((option) => option.type);
      if (types.includes("string") && types.some((t) => t === "number" || t === "integer")) {
        const number = present.find((o) => o.type === "number" || o.type === "integer");
        return { kind: "decimal", node: { ...number, ...node }, nullable };
      }
      return { kind: "json", node, nullable };
    }
    if (node.enum) return { kind: "enum", node };
    if (node.const !== undefined) return { kind: "const", node };
    if (node.type === "boolean") return { kind: "boolean", node };
    if (node.type === "integer" || node.type === "number") return { kind: "number", node };
    if (node.type === "string") return { kind: "text", node };
    if (node.type === "object" && node.properties) return { kind: "object", node };
    return { kind: "json", node };
  }

  // -- values ---------------------------------------------------------------------------

  get(path) {
    let value = this.values;
    for (const key of path) {
      if (value === undefined || value === null) return undefined;
      value = value[key];
    }
    return value;
  }

  // Set (or with undefined, unset) the value at path; parents are filled from defaults.
  put(path, value, defaults) {
    if (path.length === 1) {
      if (value === undefined) delete this.values[path[0]];
      else this.values[path[0]] = value;
    } else {
      const [head, ...rest] = path;
      const parent = this.values[head] ?? clone(defaults) ?? {};
      let target = parent;
      for (const key of rest.slice(0, -1)) {
        target[key] = target[key] ?? {};
        target = target[key];
      }
      const last = rest[rest.length - 1];
      if (value === undefined) delete target[last];
      else target[last] = value;
      this.values[head] = parent;
    }
    for (const group of this.exclusive) {
      if (value !== undefined && group.includes(path[0])) {
        for (const other of group) if (other !== path[0]) delete this.values[other];
      }
    }
  }

  spec() {
    return clone(this.values);
  }

  setSpec(spec) {
    this.values = clone(spec) || {};
    this.refresh();
  }

  set(name, value) {
    this.put([name], value);
    this.refresh();
  }

  changed(path) {
    this.refresh();
    this.onChange(path.join("."));
  }

  refresh() {
    for (const binding of this.bindings) binding.refresh();
  }

  defaultOf(name) {
    return this.resolve(this.schema.properties[name]).default;
  }

  // -- controls -------------------------------------------------------------------------

  // The controls of the named top-level fields (all but `except` when names is null).
  mount(container, { names = null, except = [], before = {} } = {}) {
    const properties = this.schema.properties || {};
    for (const name of names || Object.keys(properties)) {
      if (!(name in properties) || except.includes(name)) continue;
      if (before[name]) container.append(before[name]);
      container.append(this.field([name], properties[name], this.defaultOf(name)));
    }
  }

  field(path, node, rootDefault) {
    const name = path[path.length - 1];
    const shape = this.shape(node);
    const id = `field-${++uniqueId}`;
    const slot = h("p", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
    const hint = [shape.node.description, rangeText(shape.node)].filter(Boolean).join(" · ");
    const wrapper = h("div", { class: `field field-${shape.kind}`, dataset: { path: path.join(".") } });
    const binding = { path: path.join("."), slot, refresh: () => {} };
    this.bindings.push(binding);
    const describedBy = `${id}-hint ${id}-error`;
    const label = h("label", { for: id }, labelOf(name));

    if (shape.kind === "object") {
      const group = h("fieldset", { class: "group" }, h("legend", {}, labelOf(name)));
      const row = h("div", { class: "row" });
      for (const [key, child] of Object.entries(shape.node.properties)) {
        row.append(this.field([...path, key], child, rootDefault));
      }
      group.append(row);
      if (hint) group.append(h("p", { class: "hint", id: `${id}-hint` }, hint));
      group.append(slot);
      wrapper.append(group);
      return wrapper;
    }

    if (shape.kind === "variants") {
      return this.variantsField(path, shape, rootDefault, { id, wrapper, slot, hint, binding });
    }

    let control;
    const defaultValue =
      (path.length === 1 ? rootDefault : this.nestedDefault(path, rootDefault)) ?? shape.node.default;
    const update = (value) => {
      this.put(path, value, rootDefault);
      this.changed(path);
    };
    if (shape.kind === "enum" || shape.kind === "boolean") {
      const options = shape.kind === "enum" ? shape.node.enum : [true, false];
      control = h(
        "select",
        { id, "aria-describedby": describedBy },
        options.map((option) => h("option", { value: JSON.stringify(option) }, String(option))),
      );
      control.addEventListener("change", () => update(JSON.parse(control.value)));
      binding.refresh = () => {
        const value = this.get(path) ?? defaultValue ?? options[0];
        control.value = JSON.stringify(value);
      };
    } else if (shape.kind === "const") {
      return h("span");
    } else if (shape.kind === "number" || shape.kind === "decimal" || shape.kind === "text") {
      const numeric = shape.kind === "number";
      control = h("input", {
        id,
        type: numeric ? "number" : "text",
        inputmode: shape.kind === "text" ? undefined : "decimal",
        min: numeric ? shape.node.minimum : undefined,
        max: numeric ? shape.node.maximum : undefined,
        step: numeric ? (shape.node.type === "integer" ? shape.node.multipleOf || 1 : "any") : undefined,
        placeholder: defaultValue ?? (shape.nullable ? "auto" : ""),
        "aria-describedby": describedBy,
        autocomplete: "off",
      });
      control.addEventListener("change", () => {
        const text = control.value.trim();
        if (text === "") return update(undefined);
        if (shape.kind === "text") return update(text);
        const number = Number(text);
        // A decimal field keeps what was typed when a number would lose digits.
        if (shape.kind === "decimal") return update(String(number) === text ? number : text);
        update(Number.isFinite(number) ? number : text);
      });
      binding.refresh = () => {
        const value = this.get(path);
        if (document.activeElement !== control || value === undefined) {
          control.value = value === undefined || value === null ? "" : String(value);
        }
      };
    } else {
      control = h("textarea", { id, rows: 3, "aria-describedby": describedBy, spellcheck: "false" });
      control.addEventListener("change", () => {
        const text = control.value.trim();
        if (text === "") return update(undefined);
        try {
          update(JSON.parse(text));
          slot.textContent = "";
        } catch {
          slot.textContent = "not valid JSON";
        }
      });
      binding.refresh = () => {
        const value = this.get(path);
        if (document.activeElement !== control) {
          control.value = value === undefined ? "" : JSON.stringify(value);
        }
      };
    }
    wrapper.append(label, control);
    if (hint) wrapper.append(h("p", { class: "hint", id: `${id}-hint` }, hint));
    wrapper.append(slot);
    binding.refresh();
    return wrapper;
  }

  nestedDefault(path, rootDefault) {
    let value = rootDefault;
    for (const key of path.slice(1)) value = value?.[key];
    return value;
  }

  variantsField(path, shape, rootDefault, { id, wrapper, slot, hint, binding }) {
    const key = shape.node.discriminator?.propertyName || "kind";
    const kindOf = (option) => {
      const property = option.properties?.[key];
      return property?.const ?? property?.enum?.[0] ?? property?.default ?? option.title;
    };
    const kinds = shape.options.map(kindOf);
    const select = h(
      "select",
      { id, "aria-describedby": `${id}-hint ${id}-error` },
      kinds.map((kind) => h("option", { value: kind }, kind)),
    );
    const body = h("div", { class: "variant" });
    const current = () => this.get(path)?.[key] ?? rootDefault?.[key] ?? kinds[0];
    let shown = null;
    const draw = () => {
      const kind = current();
      select.value = kind;
      if (kind === shown) return;
      shown = kind;
      // Drop the controls of the previous variant, keep every other field's.
      this.bindings = this.bindings.filter((b) => !b.path.startsWith(`${path.join(".")}.`) || b === binding);
      body.replaceChildren();
      const option = shape.options[kinds.indexOf(kind)];
      for (const [name, child] of Object.entries(option?.properties || {})) {
        if (name === key) continue;
        body.append(this.field([...path, name], child, { [key]: kind }));
      }
    };
    select.addEventListener("change", () => {
      this.put(path, { [key]: select.value });
      this.changed(path);
    });
    binding.refresh = draw;
    wrapper.append(h("label", { for: id }, labelOf(path[path.length - 1])), select);
    if (hint) wrapper.append(h("p", { class: "hint", id: `${id}-hint` }, hint));
    wrapper.append(slot, body);
    draw();
    return wrapper;
  }

  // -- the server's verdict -------------------------------------------------------------

  clearProblems() {
    for (const binding of this.bindings) binding.slot.textContent = "";
    for (const element of document.querySelectorAll("[aria-invalid=true]")) {
      element.removeAttribute("aria-invalid");
    }
  }

  // Each message next to the deepest field its path names; what names no field here is
  // returned for the caller to show.
  showProblems(fields) {
    this.clearProblems();
    const unplaced = [];
    for (const { path, message } of fields) {
      let target = null;
      for (const binding of this.bindings) {
        const fits = binding.path === path || path.startsWith(`${binding.path}.`);
        if (fits && (!target || binding.path.length > target.path.length)) target = binding;
      }
      if (!target) {
        unplaced.push({ path, message });
        continue;
      }
      const detail = target.path === path ? message : `${path.slice(target.path.length + 1)}: ${message}`;
      target.slot.textContent = target.slot.textContent ? `${target.slot.textContent} ${detail}` : detail;
      const control = target.slot.parentElement?.querySelector("input, select, textarea");
      control?.setAttribute("aria-invalid", "true");
    }
    return unplaced;
  }
}
