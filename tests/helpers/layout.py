"""Layout checks in the browser: a page's content fits the window (no sideways scrolling), no
element sticks out of the window or out of a box that clips it, no select cuts the text of its
chosen option, and a file picker stays inside its panel. :func:`layout_problems` returns what is
wrong, one line each ([] when the page fits)."""

from __future__ import annotations

WIDTH, HEIGHT = 1280, 900

LAYOUT_JS = r"""
const out = [];
const doc = document.documentElement;
const vw = doc.clientWidth;
if (doc.scrollWidth > vw) out.push(`the page scrolls sideways: ${doc.scrollWidth} px wide in a ${vw} px window`);
const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
  (el.dataset && el.dataset.testid ? `[data-testid=${el.dataset.testid}]` : '') +
  (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\s+/).join('.') : '');
const shown = (el) => {
  const r = el.getBoundingClientRect();
  if (!r.width || !r.height) return false;
  const cs = getComputedStyle(el);
  return cs.visibility !== 'hidden' && cs.display !== 'none' && !el.closest('[hidden], .sr-only, .visually-hidden-input, datalist, option');
};
const root = document.querySelector(arguments[0] || 'main') || document.body;
const all = [root, ...root.querySelectorAll('*')].filter(shown);
const seen = new Set();
for (const el of all) {
  if (el instanceof SVGElement && !(el instanceof SVGSVGElement)) continue;  // drawn inside its <svg>'s box
  const r = el.getBoundingClientRect();
  const cs = getComputedStyle(el);
  if (r.right > vw + 1 || r.left < -1) {
    out.push(`${name(el)} sticks out of the window (${Math.round(r.left)}..${Math.round(r.right)} of ${vw} px)`);
    continue;
  }
  if (cs.textOverflow === 'ellipsis') continue;  // cut on purpose, the full text in a tooltip
  // clipped by an ancestor that hides its overflow (or scrolls it out of view)
  for (let a = el.parentElement; a && a !== doc; a = a.parentElement) {
    const acs = getComputedStyle(a);
    if (acs.overflowX === 'visible') continue;
    const ar = a.getBoundingClientRect();
    if (r.right > ar.right + 1 || r.left < ar.left - 1) {
      const key = name(el) + ' in ' + name(a);
      if (!seen.has(key)) out.push(`${name(el)} is cut by ${name(a)} (overflow-x ${acs.overflowX}: ${Math.round(r.right - ar.right)} px hidden)`);
      seen.add(key);
    }
    break;
  }
}
// a select shows its chosen option's whole text
const ctx = document.createElement('canvas').getContext('2d');
for (const sel of root.querySelectorAll('select')) {
  if (!shown(sel) || sel.multiple || !sel.selectedOptions.length) continue;
  const cs = getComputedStyle(sel);
  ctx.font = `${cs.fontStyle} ${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
  const text = sel.selectedOptions[0].textContent.trim();
  const room = sel.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) - 18;  // the arrow
  const need = ctx.measureText(text).width;
  if (need > room) out.push(`${name(sel)} cuts its text "${text}" (${Math.round(need)} px in ${Math.round(room)} px)`);
}
// a file picker stays inside the panel around it
for (const input of root.querySelectorAll('input[type=file]')) {
  if (!shown(input)) continue;
  const box = input.closest('.panel, fieldset, form');
  if (!box) continue;
  const r = input.getBoundingClientRect(), br = box.getBoundingClientRect();
  if (r.right > br.right + 1) out.push(`${name(input)} overflows ${name(box)} by ${Math.round(r.right - br.right)} px`);
}
return out;
"""


def set_width(driver, width: int = WIDTH, height: int = HEIGHT) -> None:
    """The page's viewport exactly ``width`` x ``height`` CSS pixels (a desktop window, no scaling)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def reset_width(driver) -> None:
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def layout_problems(driver, root: str = "main") -> list[str]:
    """What does not fit in the page (or under the ``root`` selector): [] when everything does."""
    return driver.execute_script(LAYOUT_JS, root)
