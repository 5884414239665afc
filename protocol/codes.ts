/** Numeric reply codes of the Signaller protocol and their names (PROTOCOL.md, "Replies"). */

/** Every error code a reply may carry, by name. */
export const Codes = {
  RPL_TRYAGAIN: 263,
  ERR_NOSUCHNICK: 401,
  ERR_NOSUCHCHANNEL: 403,
  ERR_CANNOTSENDTOCHAN: 404,
  ERR_TOOMANYCHANNELS: 405,
  ERR_INPUTTOOLONG: 417,
  ERR_UNKNOWNCOMMAND: 421,
  ERR_ERRONEUSNICKNAME: 432,
  ERR_NICKNAMEINUSE: 433,
  ERR_USERNOTINCHANNEL: 441,
  ERR_NOTONCHANNEL: 442,
  ERR_USERONCHANNEL: 443,
  ERR_NOTREGISTERED: 451,
  ERR_NEEDMOREPARAMS: 461,
  ERR_ALREADYREGISTERED: 462,
  ERR_BANNEDFROMCHAN: 474,
  ERR_CHANNELISFULL: 471,
  ERR_BANLISTFULL: 478,
  ERR_BADCHANNELKEY: 475,
  ERR_NOPRIVILEGES: 481,
  ERR_CHANOPRIVSNEEDED: 482,
  /** Not in the IRC set: the server's store is unreachable; retry later. */
  ERR_UNAVAILABLE: 503,
} as const;

/** The name of an error code, e.g. `"ERR_NOSUCHNICK"`. */
export type CodeName = keyof typeof Codes;
/** An error code, e.g. `401`. */
export type Code = typeof Codes[CodeName];

const NAMES = new Map<number, CodeName>(
  Object.entries(Codes).map(([name, code]) => [code, name as CodeName]),
);

/** The name of `code`, e.g. `codeName(475) === "ERR_BADCHANNELKEY"`. */
export function codeName(code: Code): CodeName {
  return NAMES.get(code)!;
}

/** WebSocket close codes the server uses (PROTOCOL.md, "Close codes"). */
export const CloseCodes = {
  GOING_AWAY: 1001,
  TOO_LARGE: 1009,
  NOT_DESCRIBED: 4001,
  REPLACED: 4002,
  FLOOD: 4003,
  TOO_SLOW: 4008,
} as const;
