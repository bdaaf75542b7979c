import pkg from '../package.json' with { type: 'json' };

/** regate's version, from package.json (labels in decision logs, build_info metric). */
export const VERSION: string = pkg.version;
