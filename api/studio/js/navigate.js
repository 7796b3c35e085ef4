// Exploring in the preview: a click centres the view on the point under the pointer, the
// wheel zooms around it. Centres are decimal strings of any length (a deep zoom's centre
// needs 30 - 300 digits), so the arithmetic is done on BigInt fixed-point decimals: a
// float64 offset (at most a few half-heights) is added to an exact centre without losing
// the centre's digits.

const GUARD_DIGITS = 20; // digits kept below the view's half-height

// A decimal ("-1.25", "3e-5", 0.5) as a BigInt counting units of 10^-digits (truncated).
export function toFixedPoint(value, digits) {
  const text = typeof value === "number" ? value.toExponential(17) : String(value).trim();
  const match = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!match || (match[2] === "" && (match[3] ?? "") === "")) {
    throw new Error(`not a decimal number: ${text}`);
  }
  const [, sign, whole, fraction = "", exponentText = "0"] = match;
  const shift = digits + Number(exponentText) - fraction.length;
  let units = BigInt(`${whole}${fraction}` || "0");
  if (shift >= 0) units *= 10n ** BigInt(shift);
  else units /= 10n ** BigInt(-shift);
  return sign === "-" ? -units : units;
}

// The BigInt of toFixedPoint back to a plain decimal string, trailing zeros dropped.
export function fromFixedPoint(units, digits) {
  const negative = units < 0n;
  const text = (negative ? -units : units).toString().padStart(digits + 1, "0");
  const whole = text.slice(0, text.length - digits);
  const fraction = text.slice(text.length - digits).replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
}

// How many decimal places a centre needs at this half-height.
export function placesFor(scale) {
  return Math.max(0, Math.ceil(-Math.log10(scale))) + GUARD_DIGITS;
}

// centre + offset, exactly (offset: a float64 of the view's size).
export function shiftDecimal(centre, offset, scale) {
  const digits = placesFor(scale);
  const sum = toFixedPoint(centre ?? 0, digits) + toFixedPoint(offset, digits);
  return fromFixedPoint(sum, digits);
}

// The plane offset from the view's centre of a point of the shown image, as the engine
// maps pixels: rows top to bottom are +im to -im, the view turned by `rotation`.
export function planeOffset(fraction, aspect, scale, rotation) {
  const u = (2 * fraction.x - 1) * scale * aspect;
  const v = (1 - 2 * fraction.y) * scale;
  const cos = Math.cos(rotation);
  const sin = Math.sin(rotation);
  return { re: u * cos - v * sin, im: u * sin + v * cos };
}

// Where a pointer event falls in an <img> drawn with object-fit: contain, as fractions of
// the picture (0..1), or null outside the picture.
export function pictureFraction(image, event) {
  const box = image.getBoundingClientRect();
  const natural = image.naturalWidth / image.naturalHeight || 1;
  let width = box.width;
  let height = box.width / natural;
  if (height > box.height) {
    height = box.height;
    width = box.height * natural;
  }
  const x = (event.clientX - box.left - (box.width - width) / 2) / width;
  const y = (event.clientY - box.top - (box.height - height) / 2) / height;
  return x < 0 || x > 1 || y < 0 || y > 1 ? null : { x, y };
}

// The half-height shown at `frame` by a camera the page can follow (still: the spec's
// own; zoom: exponential from `scale` to `zoom_to`), or null (keyframes).
export function shownScale(spec, defaults, frames, frame) {
  const scale = Number(spec.scale ?? defaults.scale);
  const camera = spec.camera ?? defaults.camera ?? { kind: "still" };
  if (camera.kind === "still") return scale;
  if (camera.kind === "zoom" && camera.zoom_to) {
    const progress = frames > 1 ? frame / (frames - 1) : 0;
    return scale * (Number(camera.zoom_to) / scale) ** progress;
  }
  return frame === 0 ? scale : null;
}
