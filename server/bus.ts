/**
 * The bus moved to `bus/bus.ts`; this module re-exports it for the importers
 * of its old path.
 *
 * @module
 */
export * from "./bus/bus.ts";
