// Run in a page by tests/browser/test_screens.py: every visible control is named (a label, its
// text or aria-label), and every visible text has a contrast of at least 4.5:1 against what is
// behind it (3:1 for large text), as WCAG 2 AA asks. Returns the problems found.
() => {
    const problems = [];
    const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== "hidden";
    for (const el of document.querySelectorAll("input, textarea, select")) {
        if (visible(el) && !el.labels.length && !el.getAttribute("aria-label")) {
            problems.push(`no label: ${el.outerHTML.slice(0, 80)}`);
        }
    }
    for (const el of document.querySelectorAll("button, a[href]")) {
        if (visible(el) && !(el.getAttribute("aria-label") || el.textContent.trim())) {
            problems.push(`no name: ${el.outerHTML.slice(0, 80)}`);
        }
    }
    const rgb = (text) => (text.match(/[\d.]+/g) || []).map(Number);
    const luminance = ([r, g, b]) => {
        const c = [r, g, b].map((v) => v / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    };
    const background = (el) => {
        for (let node = el; node; node = node.parentElement) {
            const color = rgb(getComputedStyle(node).backgroundColor);
            if (color.length === 3 || (color.length === 4 && color[3] > 0.5)) return color.slice(0, 3);
        }
        return [255, 255, 255];
    };
    for (const el of document.querySelectorAll("body *")) {
        const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
        if (!own || !visible(el) || el.closest(".sr-only") || el.disabled) continue;
        const style = getComputedStyle(el);
        const [fg, bg] = [luminance(rgb(style.color)), luminance(background(el))];
        const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
        const size = parseFloat(style.fontSize);
        const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
        if (ratio < (large ? 3 : 4.5)) problems.push(`contrast ${ratio.toFixed(2)}: ${el.textContent.trim().slice(0, 40)}`);
    }
    return problems;
}
